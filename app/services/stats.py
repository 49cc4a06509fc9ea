"""Statistics (SPEC.md §7): every figure from the rollups, never the message table,
so a page costs the same at any volume: the narrow tables (one column per outcome,
no signature/template/SMS type) unless a filter needs the full ones (Scope). One
module for the pages, the CSV exports, Slack's `/sms stats` and a bulk task's receipt analysis.

Every call checks `DescribeStatistics` per application: the figures cover only
the applications the actor may read statistics of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, NamedTuple

import phonenumbers
from sqlalchemy import BigInteger, case, cast, func, select, text

from app.db import utcnow
from app.models import (
    Account,
    Application,
    Signature,
    StatAppsDaily,
    StatCodesDaily,
    StatCountriesDaily,
    StatRollup,
    StatRollupDaily,
    StatTotalsDaily,
    StatTotalsHourly,
    Template,
)
from app.services.context import Ctx
from app.services.errors import PermissionDenied, invalid
from app.sms import errors, outcomes, periods
from app.sms.text import INTERNATIONAL, MAINLAND

ACTION = "DescribeStatistics"
REGIONS = (MAINLAND, INTERNATIONAL)


@dataclass(frozen=True)
class StatsFilter:
    region: str = MAINLAND
    period: str = "today"
    start: str = ""  # custom range, local dates YYYY-MM-DD
    end: str = ""
    sdk_app_id: str = ""
    signature_id: int | None = None
    template_id: int | None = None
    iso_code: str = ""  # international only


@dataclass(frozen=True)
class Figures:
    requests: int = 0
    success: int = 0  # accepted by the carrier
    billed: int = 0  # billed items of those

    @property
    def success_rate(self) -> float | None:
        return self.success / self.requests if self.requests else None


@dataclass(frozen=True)
class Overview:
    window: periods.Window
    total: Figures
    trend: list[tuple[datetime, Figures]]  # one per bucket (hour or day), empty ones too


@dataclass(frozen=True)
class Share:
    code: str
    reason: str
    count: int
    share: float


@dataclass(frozen=True)
class Receipts:
    with_receipt: int
    without_receipt: int
    delivered: int
    failed: int
    reasons: list[Share]

    @property
    def receipt_rate(self) -> float | None:
        seen = self.with_receipt + self.without_receipt
        return self.with_receipt / seen if seen else None

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.with_receipt if self.with_receipt else None


@dataclass(frozen=True)
class CountryRow:
    iso_code: str
    calling_code: str
    figures: Figures
    share: float
    unit_price: int | None  # cents per billed item, when set


class CodeHour(NamedTuple):
    """One application's hour (a named tuple: a month has some 10,000 of them)."""

    sdk_app_id: str
    app_name: str
    hour: datetime  # local
    requests: int
    success: int
    yesterday: int  # requests in the same hour the day before

    @property
    def success_rate(self) -> float | None:
        return self.success / self.requests if self.requests else None

    @property
    def growth(self) -> float | None:
        return (self.requests - self.yesterday) / self.yesterday if self.yesterday else None


@dataclass(frozen=True)
class Scope:
    """What a filter resolved to: the window and the applications it covers."""

    filter: StatsFilter
    window: periods.Window
    apps: dict[int, Application]
    account_id: int
    every: bool = False  # every application of the account, none filtered

    @property
    def narrow(self) -> bool:
        """No signature or template filter: the narrow rollups answer."""
        return self.filter.signature_id is None and self.filter.template_id is None

    def totals(self, hourly: bool | None = None, by_country: bool = False) -> Any:
        """The table for counts by outcome: hourly rows for a one-day window (its
        chart is by hour), daily otherwise (a 30-day page reads 24 times fewer
        rows); the narrowest table the filter allows: by day, without the country
        unless the page needs it, and without the application when the actor sees
        every one and filters none (the narrow hourly table has no country: a
        country filter or breakdown by the hour reads the full one)."""
        hourly = self.window.hourly if hourly is None else hourly
        country = by_country or bool(self.filter.iso_code.strip())
        if self.narrow and not hourly:
            if not country:
                return StatAppsDaily
            return StatCountriesDaily if self.every else StatTotalsDaily
        if self.narrow and not country:
            return StatTotalsHourly
        return StatRollup if hourly else StatRollupDaily

    def codes(self) -> Any:
        """The table for counts by error or carrier code: always by the day (a
        window is whole local days, and these tables show no hours: a day's
        failures are some 100 daily rows, not 20,000 hourly ones)."""
        if self.narrow and not self.filter.iso_code.strip():
            return StatCodesDaily
        return StatRollupDaily

    def where(self, m: Any, hours: tuple[datetime, datetime] | None = None) -> list[Any]:
        f = self.filter
        conds: list[Any] = [m.account_id == self.account_id, m.region == f.region]
        if hasattr(m, "app_id"):  # (the account-wide table is read only when `every`)
            conds.append(m.app_id.in_(list(self.apps)))
        if hasattr(m, "hour"):
            start, end = hours or (self.window.start, self.window.end)
            conds += [m.hour >= start, m.hour < end]
        else:
            conds += [m.day >= self.window.first, m.day <= self.window.last]
        if f.signature_id is not None:
            conds.append(m.signature_id == f.signature_id)
        if f.template_id is not None:
            conds.append(m.template_id == f.template_id)
        if f.iso_code.strip():
            conds.append(m.iso_code == f.iso_code.strip().upper())
        return conds


def scope(ctx: Ctx, f: StatsFilter, now: datetime | None = None) -> Scope:
    """Checks the filter and the actor's rights; every query starts here."""
    if f.region not in REGIONS:
        raise invalid("region", "Choose mainland or international.")
    account = ctx.db.get(Account, ctx.actor.account_id)
    assert account is not None
    try:
        win = periods.window(f.period, now or utcnow(), account.timezone, f.start, f.end)
    except periods.PeriodError as exc:
        raise invalid("period", str(exc)) from None
    every_app = list(ctx.db.scalars(select(Application).where(
        Application.account_id == ctx.actor.account_id).order_by(Application.sdk_app_id)))
    apps = {a.id: a for a in every_app if ctx.actor.can(ACTION, a.sdk_app_id)}
    every = not f.sdk_app_id.strip() and len(apps) == len(every_app)
    if f.sdk_app_id:
        apps = {k: a for k, a in apps.items() if a.sdk_app_id == f.sdk_app_id.strip()}
        if not apps:
            from app.services.apps import get_app

            get_app(ctx, f.sdk_app_id.strip(), ACTION)  # NotFound or PermissionDenied
    elif not apps and not ctx.actor.can(ACTION):
        raise PermissionDenied(f"You are not allowed to do sms:{ACTION}.")
    if f.iso_code.strip():
        iso = f.iso_code.strip().upper()
        if len(iso) != 2 or not iso.isalpha():
            raise invalid("iso_code", "Give a two-letter country code, such as US.")
    if ctx.db.get_bind().dialect.name == "postgresql":
        # A page aggregates some thousands of rollup rows: parallel workers would cost
        # more to start than they save (tens of ms, more on a busy machine).
        ctx.db.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    return Scope(f, win, apps, ctx.actor.account_id, every)


def _total(expr: Any) -> Any:
    # As bigint: PostgreSQL's sum of bigints is a numeric, fetched as a slow Decimal.
    return cast(func.coalesce(func.sum(expr), 0), BigInteger)


def _count(m: Any, among: Sequence[str] = outcomes.OUTCOMES) -> Any:
    """How many messages of `m`'s rows are in one of `among`: a sum of outcome
    columns in the narrow tables, of the rows of those outcomes in the full ones."""
    if hasattr(m, "outcome"):
        if among == outcomes.OUTCOMES:
            return _total(m.count)
        return _total(case((m.outcome.in_(among), m.count), else_=0))
    return _total(sum((getattr(m, o) for o in among[1:]), getattr(m, among[0])))


def _billed(m: Any) -> Any:
    """Billed items of the messages the carrier accepted."""
    if hasattr(m, "outcome"):
        return _total(case((m.outcome.in_(outcomes.SUCCESS), m.billed), else_=0))
    return _total(m.billed)


def overview(ctx: Ctx, f: StatsFilter, now: datetime | None = None) -> Overview:
    sc = scope(ctx, f, now)
    buckets = {b: [0, 0, 0] for b in sc.window.buckets()}
    m = sc.totals()
    when = m.hour if hasattr(m, "hour") else m.day
    for at, req, ok, billed in ctx.db.execute(
            select(when, _count(m), _count(m, outcomes.SUCCESS), _billed(m))
            .where(*sc.where(m)).group_by(when)):
        bucket = sc.window.bucket_of(_aware(at)) if hasattr(m, "hour") else \
            datetime.combine(at, time(), sc.window.zone)
        cell = buckets.setdefault(bucket, [0, 0, 0])
        cell[0] += int(req)
        cell[1] += int(ok)
        cell[2] += int(billed)
    trend = [(b, Figures(*v)) for b, v in sorted(buckets.items())]
    total = Figures(*(sum(v[i] for v in buckets.values()) for i in range(3)))
    return Overview(sc.window, total, trend)


def _aware(hour: Any) -> datetime:
    from datetime import UTC

    if isinstance(hour, str):  # SQLite through an aggregate keeps the stored text
        hour = datetime.fromisoformat(hour)
    return hour if hour.tzinfo else hour.replace(tzinfo=UTC)


def _shares(rows: Sequence[tuple[str, int]]) -> list[Share]:
    total = sum(n for _c, n in rows)
    return [Share(code, errors.describe(code).reason if code else "No code given", n,
                  n / total if total else 0.0)
            for code, n in sorted(rows, key=lambda r: (-r[1], r[0])) if n]


def failures(ctx: Ctx, f: StatsFilter, now: datetime | None = None) -> list[Share]:
    """Every message that did not reach the carrier or the phone, by error code."""
    sc = scope(ctx, f, now)
    m = sc.codes()
    rows = ctx.db.execute(select(m.error_code, _total(m.count))
                          .where(*sc.where(m), m.outcome.in_(outcomes.FAILURES))
                          .group_by(m.error_code)).all()
    return _shares([(r[0], int(r[1])) for r in rows])


def receipts(ctx: Ctx, f: StatsFilter, now: datetime | None = None) -> Receipts:
    """Receipt analysis: counts by outcome, failed receipts by carrier code."""
    sc = scope(ctx, f, now)
    m = sc.totals(hourly=False)  # no chart by the hour here: a day is one daily row
    delivered, failed, without = (int(n) for n in ctx.db.execute(
        select(_count(m, (outcomes.DELIVERED,)), _count(m, (outcomes.FAILED,)),
               _count(m, outcomes.WITHOUT_RECEIPT)).where(*sc.where(m))).one())
    c = sc.codes()
    reasons = [(carrier, int(n)) for carrier, n in ctx.db.execute(
        select(c.carrier_code, _total(c.count))
        .where(*sc.where(c), c.outcome == outcomes.FAILED)
        .group_by(c.carrier_code))]
    return Receipts(delivered + failed, without, delivered, failed, _shares(reasons))


def countries(ctx: Ctx, f: StatsFilter, now: datetime | None = None,
              unit_prices: dict[str, int] | None = None) -> list[CountryRow]:
    """International traffic by destination, largest first."""
    if f.region != INTERNATIONAL:
        raise invalid("region", "Countries and regions are an international figure.")
    sc = scope(ctx, f, now)
    m = sc.totals(by_country=True)
    rows = ctx.db.execute(select(m.iso_code, _count(m), _count(m, outcomes.SUCCESS),
                                 _billed(m)).where(*sc.where(m)).group_by(m.iso_code)).all()
    total = sum(int(r[1]) for r in rows)
    prices = unit_prices or {}
    out = [CountryRow(iso or "Unknown", _calling_code(iso), Figures(int(n), int(ok), int(b)),
                      int(n) / total if total else 0.0, prices.get(iso))
           for iso, n, ok, b in rows if int(n)]
    return sorted(out, key=lambda r: (-r.figures.requests, r.iso_code))


def _calling_code(iso: str) -> str:
    code = phonenumbers.country_code_for_region(iso) if iso else 0
    return f"+{code}" if code else ""


def verification(ctx: Ctx, f: StatsFilter, now: datetime | None = None) -> list[CodeHour]:
    """Verification-code traffic per application and local hour, with the growth
    over the same hour the day before (what the captcha-abuse monitor watches)."""
    sc = scope(ctx, f, now)
    day = timedelta(days=1)
    # The day before the window too, for the first day's growth.
    m = sc.totals(hourly=True)  # by the hour, whatever the period
    conds = [*sc.where(m, (sc.window.start - day, sc.window.end)), m.verification.is_(True)]
    # Hours as UTC epoch seconds: a month is some 10,000 rows, and plain integers
    # fetch and compare far faster than aware datetimes.
    epoch = cast(func.extract("epoch", m.hour), BigInteger)
    found: dict[tuple[int, int], tuple[int, int]] = {
        (app_id, int(at)): (int(n), int(ok)) for app_id, at, n, ok in ctx.db.execute(
            select(m.app_id, epoch, _count(m), _count(m, outcomes.SUCCESS))
            .where(*conds).group_by(m.app_id, epoch))}
    start, zone, names = int(sc.window.start.timestamp()), sc.window.zone, {
        a.id: (a.sdk_app_id, a.name) for a in sc.apps.values()}
    out = []
    for (app_id, at), (n, ok) in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if at < start:
            continue
        sdk_app_id, name = names[app_id]
        before = found.get((app_id, at - 86400), (0, 0))[0]
        out.append(CodeHour(sdk_app_id, name, datetime.fromtimestamp(at, zone), n, ok, before))
    return out


VERIFICATION_PAGE = 100  # application-hours per page (a month is some 10,000)


def verification_page(ctx: Ctx, f: StatsFilter, page: int = 1,
                      page_size: int = VERIFICATION_PAGE,
                      now: datetime | None = None) -> tuple[list[CodeHour], int]:
    """One page of `verification`'s rows (same order, same figures) and how many
    there are: the database groups, counts and cuts the page, so a month's page
    builds 100 rows, not 10,000 (and the page reads the day before for those only)."""
    sc = scope(ctx, f, now)
    if not 1 <= page_size <= 1000:
        raise invalid("page_size", "Give a page size from 1 to 1000.")
    page = max(1, page)
    m = sc.totals(hourly=True)
    epoch = cast(func.extract("epoch", m.hour), BigInteger)
    conds = [*sc.where(m), m.verification.is_(True)]
    # The total as a window over the groups: one pass over the rollups, not two.
    found = ctx.db.execute(
        select(m.app_id, epoch, _count(m), _count(m, outcomes.SUCCESS), func.count().over())
        .where(*conds).group_by(m.app_id, m.hour).order_by(m.hour, m.app_id)
        .limit(page_size).offset((page - 1) * page_size)).all()
    if not found:  # nothing at all, or past the last page: then count on its own
        if page == 1:
            return [], 0
        return [], ctx.db.scalar(select(func.count()).select_from(
            select(m.app_id, m.hour).where(*conds).group_by(m.app_id, m.hour)
            .subquery())) or 0
    total = int(found[0][4])
    rows = [r[:4] for r in found]
    # The same hours a day earlier, for these applications only.
    day = timedelta(days=1)
    ats = [int(r[1]) for r in rows]
    first, last = (datetime.fromtimestamp(min(ats), sc.window.zone) - day,
                   datetime.fromtimestamp(max(ats), sc.window.zone) - day + timedelta(hours=1))
    apps_seen = sorted({r[0] for r in rows})
    before: dict[tuple[int, int], int] = {
        (app_id, int(at)): int(n) for app_id, at, n in ctx.db.execute(
            select(m.app_id, epoch, _count(m))
            .where(*sc.where(m, (first, last)), m.verification.is_(True),
                   m.app_id.in_(apps_seen)).group_by(m.app_id, m.hour))}
    zone, names = sc.window.zone, {a.id: (a.sdk_app_id, a.name) for a in sc.apps.values()}
    out = []
    for app_id, at, n, ok in rows:
        sdk_app_id, name = names[app_id]
        out.append(CodeHour(sdk_app_id, name, datetime.fromtimestamp(int(at), zone), int(n),
                            int(ok), before.get((app_id, int(at) - 86400), 0)))
    return out, total


def choices(ctx: Ctx, region: str) -> dict[str, list[tuple[str, str]]]:
    """The filter's options: applications, signatures and templates of the region."""
    apps = [(a.sdk_app_id, f"{a.name} ({a.sdk_app_id})") for a in ctx.db.scalars(
        select(Application).where(Application.account_id == ctx.actor.account_id)
        .order_by(Application.sdk_app_id)) if ctx.actor.can(ACTION, a.sdk_app_id)]
    if region not in REGIONS:
        region = MAINLAND
    sigs = [(str(s.id), s.content) for s in ctx.db.scalars(select(Signature).where(
        Signature.account_id == ctx.actor.account_id, Signature.region == region)
        .order_by(Signature.content))]
    temps = [(str(t.id), t.name) for t in ctx.db.scalars(select(Template).where(
        Template.account_id == ctx.actor.account_id, Template.region == region)
        .order_by(Template.name))]
    return {"apps": apps, "signatures": sigs, "templates": temps}
