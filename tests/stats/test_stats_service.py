"""Every statistics figure equals a direct count over the message table on a fixed
data set (SQLite and PostgreSQL), period edges in the account's zone, rights."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.models import Message
from app.services import apps, rollups, stats
from app.services.errors import NotFound, PermissionDenied, ValidationError
from app.sms.csvcells import neutralise, to_csv
from tests.helpers import ctx_for, make_user
from tests.sending.conftest import Shop
from tests.stats.expected import outcome_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=SHANGHAI)  # local noon
SUCCESS = {"submitted", "delivered", "failed", "no_receipt"}
# (local time, region, country, status, error, carrier, receipt?, type, fee)
ROWS: list[tuple[Any, ...]] = [
    (datetime(2026, 3, 9, 23, 59, 59), "international", "US", "delivered", None, "DELIVRD", 1,
     "verification", 1),  # yesterday's last second
    (datetime(2026, 3, 10, 0, 0, 0), "international", "US", "failed",
     "FailedOperation.Undelivered", "UNDELIV", 1, "verification", 2),  # today's first
    (datetime(2026, 3, 10, 9, 15), "international", "GB", "failed",
     "FailedOperation.GatewayRejected", "MK:0012", 0, "notification", 1),
    (datetime(2026, 3, 10, 9, 30), "international", "GB", "submitted", None, None, 0,
     "verification", 3),
    (datetime(2026, 3, 10, 9, 45), "international", "US", "rejected",
     "=cmd|' /C calc'!A0", None, 0, "verification", 0),  # a hostile code, for the CSV
    (datetime(2026, 3, 10, 10, 5), "international", "US", "no_receipt",
     "FailedOperation.NoReceipt", None, 0, "verification", 1),
    (datetime(2026, 3, 10, 10, 6), "international", "DE", "unknown",
     "FailedOperation.OutcomeUnknown", None, 0, "notification", 1),
    (datetime(2026, 3, 10, 11, 0), "international", "US", "accepted", None, None, 0,
     "verification", 1),
    (datetime(2026, 3, 9, 9, 20), "international", "US", "delivered", None, "DELIVRD", 1,
     "verification", 1),  # yesterday, same hour as a row today: growth
    (datetime(2026, 3, 4, 8, 0), "international", "FR", "delivered", None, "DELIVRD", 1,
     "notification", 2),  # in 7d
    (datetime(2026, 3, 3, 23, 59, 59), "international", "FR", "delivered", None, "DELIVRD",
     1, "notification", 2),  # just outside 7d
    (datetime(2026, 3, 10, 8, 0), "mainland", "CN", "delivered", None, "DELIVRD", 1,
     "verification", 1),
    (datetime(2026, 3, 9, 15, 0), "mainland", "CN", "submitted", None, None, 0,
     "notification", 2),
    (datetime(2026, 3, 10, 8, 1), "mainland", "CN", "rejected",
     "FailedOperation.PhoneNumberInMuteList", None, 0, "notification", 0),
]


def _load(session: Session, shop: Shop, other_app_id: int) -> None:
    rows = []
    for n, (local, region, iso, status, err, carrier, receipt, sms_type, fee) in \
            enumerate(ROWS):
        at = local.replace(tzinfo=SHANGHAI).astimezone(UTC)
        rows.append({"account_id": shop.app.account_id,
                     "app_id": other_app_id if n % 4 == 3 else shop.app.id,
                     "serial_no": uuid.uuid4().hex, "request_id": "r", "region": region,
                     "phone_number": f"+1415555{n:04d}", "iso_code": iso,
                     "signature_id": shop.signatures[region],
                     "template_id": shop.templates[region], "sms_type": sms_type,
                     "content": "Hello", "encoding": "GSM", "fee": fee, "status": status,
                     "error_code": err, "carrier_code": carrier, "created_at": at,
                     "receipt_at": at + timedelta(seconds=5) if receipt else None})
    session.execute(insert(Message), rows)
    rollups.count_new(session, rows)
    session.flush()


@pytest.fixture
def loaded(session: Session, shop: Shop) -> Shop:
    other, _key = apps.create_app(shop.ctx, name="Other")
    _load(session, shop, other.id)
    shop.other = other.sdk_app_id  # type: ignore[attr-defined]
    return shop


def _messages(session: Session, region: str, first: datetime, last_excl: datetime,
              app_id: int | None = None) -> list[Message]:
    return [m for m in session.scalars(select(Message).where(Message.region == region))
            if first <= m.created_at < last_excl and (app_id is None or m.app_id == app_id)]


def _day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=SHANGHAI)


@pytest.mark.parametrize(("period", "first", "last"), [
    ("today", _day(2026, 3, 10), _day(2026, 3, 11)),
    ("yesterday", _day(2026, 3, 9), _day(2026, 3, 10)),
    ("7d", _day(2026, 3, 4), _day(2026, 3, 11)),
    ("30d", _day(2026, 2, 9), _day(2026, 3, 11)),
])
@pytest.mark.parametrize("region", ["international", "mainland"])
def test_overview_equals_a_direct_count(loaded: Shop, session: Session, period: str,
                                        first: datetime, last: datetime,
                                        region: str) -> None:
    got = stats.overview(loaded.ctx, stats.StatsFilter(region=region, period=period), NOW)
    msgs = _messages(session, region, first, last)
    ok = [m for m in msgs if outcome_of(m) in SUCCESS]
    assert (got.total.requests, got.total.success, got.total.billed) == (
        len(msgs), len(ok), sum(m.fee for m in ok))
    assert got.total.requests > 0
    assert len(got.trend) == (24 if period in ("today", "yesterday") else
                              (7 if period == "7d" else 30))
    assert sum(f.requests for _b, f in got.trend) == len(msgs)
    for start, figures in got.trend:  # each bucket holds exactly its own messages
        end = start + (timedelta(hours=1) if got.window.hourly else timedelta(days=1))
        assert figures.requests == len(_messages(session, region, start, end))


def test_the_last_second_of_a_local_day_is_in_that_day(loaded: Shop) -> None:
    f = stats.StatsFilter(region="international", period="yesterday")
    trend = dict(stats.overview(loaded.ctx, f, NOW).trend)
    assert trend[datetime(2026, 3, 9, 23, tzinfo=SHANGHAI)].requests == 1
    today = dict(stats.overview(loaded.ctx, stats.StatsFilter(
        region="international"), NOW).trend)
    assert today[datetime(2026, 3, 10, 0, tzinfo=SHANGHAI)].requests == 1
    custom = stats.overview(loaded.ctx, stats.StatsFilter(
        region="international", period="custom", start="2026-03-03", end="2026-03-03"), NOW)
    assert custom.total.requests == 1  # 23:59:59 on the 3rd, not the 4th


def test_filters_narrow_the_figures(loaded: Shop, session: Session) -> None:
    intl = "international"
    by_app = stats.overview(loaded.ctx, stats.StatsFilter(
        region=intl, period="30d", sdk_app_id=loaded.other), NOW)  # type: ignore[attr-defined]
    other_id = next(a.id for a in apps.list_apps(loaded.ctx)
                    if a.sdk_app_id == loaded.other)  # type: ignore[attr-defined]
    assert by_app.total.requests == len(_messages(
        session, intl, _day(2026, 2, 9), _day(2026, 3, 11), other_id)) > 0
    us = stats.overview(loaded.ctx, stats.StatsFilter(region=intl, period="30d",
                                                      iso_code="us"), NOW)
    assert us.total.requests == sum(1 for r in ROWS if r[1] == intl and r[2] == "US")
    none = stats.overview(loaded.ctx, stats.StatsFilter(
        region=intl, period="30d", template_id=loaded.templates["marketing"]), NOW)
    assert none.total.requests == 0


def test_failures_receipts_countries_verification(loaded: Shop, session: Session) -> None:
    f = stats.StatsFilter(region="international", period="today")
    msgs = _messages(session, "international", _day(2026, 3, 10), _day(2026, 3, 11))
    fails = [m for m in msgs if outcome_of(m) in {"rejected", "refused", "failed",
                                                  "no_receipt", "unknown"}]
    got = stats.failures(loaded.ctx, f, NOW)
    assert {s.code: s.count for s in got} == {
        c: sum(1 for m in fails if m.error_code == c) for c in {m.error_code for m in fails}}
    assert sum(s.share for s in got) == pytest.approx(1.0)
    assert got[0].reason  # a plain reason from the catalogue

    r = stats.receipts(loaded.ctx, f, NOW)
    with_r = [m for m in msgs if outcome_of(m) in {"delivered", "failed"}]
    without = [m for m in msgs if outcome_of(m) in {"submitted", "no_receipt"}]
    assert (r.with_receipt, r.without_receipt) == (len(with_r), len(without)) == (1, 2)
    assert (r.delivered, r.failed) == (0, 1)
    assert r.receipt_rate == pytest.approx(1 / 3) and r.delivery_rate == 0.0
    assert [(s.code, s.count) for s in r.reasons] == [("UNDELIV", 1)]

    rows = stats.countries(loaded.ctx, stats.StatsFilter(region="international",
                                                         period="30d"), NOW, {"US": 7})
    month = _messages(session, "international", _day(2026, 2, 9), _day(2026, 3, 11))
    assert {c.iso_code: c.figures.requests for c in rows} == {
        iso: sum(1 for m in month if m.iso_code == iso) for iso in {m.iso_code for m in month}}
    assert rows[0].iso_code == "US" and rows[0].calling_code == "+1"
    assert rows[0].unit_price == 7
    assert sum(c.share for c in rows) == pytest.approx(1.0)
    with pytest.raises(ValidationError):
        stats.countries(loaded.ctx, stats.StatsFilter(region="mainland"), NOW)

    codes = stats.verification(loaded.ctx, f, NOW)
    assert sum(c.requests for c in codes) == sum(
        1 for m in msgs if m.sms_type == "verification")
    nine = [c for c in codes if c.hour.hour == 9 and c.sdk_app_id == loaded.app.sdk_app_id]
    assert nine and nine[0].yesterday == 1  # 09:20 yesterday, same application


def test_rights_and_bad_input(loaded: Shop, session: Session) -> None:
    nobody = ctx_for(session, make_user(session, "n@example.com", policies=[json.dumps(
        {"version": "2.0", "statement": [{"effect": "allow", "action": ["sms:DescribeAppList"],
                                          "resource": ["sms:app/*"]}]})]))
    with pytest.raises(PermissionDenied):
        stats.overview(nobody, stats.StatsFilter(), NOW)
    one = ctx_for(session, make_user(session, "o@example.com", policies=[json.dumps(
        {"version": "2.0", "statement": [{"effect": "allow", "action": ["sms:DescribeStatistics"],
                                          "resource": [f"sms:app/{loaded.other}"]}]})]))  # type: ignore[attr-defined]
    mine = stats.overview(one, stats.StatsFilter(region="international", period="30d"), NOW)
    everything = stats.overview(loaded.ctx, stats.StatsFilter(region="international",
                                                              period="30d"), NOW)
    assert 0 < mine.total.requests < everything.total.requests
    with pytest.raises((NotFound, PermissionDenied)):
        stats.overview(one, stats.StatsFilter(sdk_app_id=loaded.app.sdk_app_id), NOW)
    for bad in (stats.StatsFilter(region="mars"), stats.StatsFilter(period="forever"),
                stats.StatsFilter(period="custom", start="2026-13-01"),
                stats.StatsFilter(period="custom", start="2026-03-05", end="2026-03-01"),
                stats.StatsFilter(period="custom", start="2025-01-01", end="2026-03-01"),
                stats.StatsFilter(iso_code="1'; drop")):
        with pytest.raises(ValidationError):
            stats.overview(loaded.ctx, bad, NOW)


def test_csv_cells_are_neutralised() -> None:
    assert neutralise("=1+1") == "'=1+1"
    assert [neutralise(v) for v in ("+1", "-1", "@x", "\tx", "\rx", "ok")] == [
        "'+1", "'-1", "'@x", "'\tx", "'\rx", "ok"]
    assert neutralise(-0.5) == "-0.5"  # a number stays a number
    assert to_csv(["a"], [["=cmd"]]).splitlines() == ["a", "'=cmd"]
    # Spreadsheets in East Asian locales read full-width signs as their ASCII forms.
    assert [neutralise(v) for v in ("\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20x")] == [
        "'\uff1d1+1", "'\uff0b1", "'\uff0d1", "'\uff20x"]


@pytest.mark.parametrize("period", ["today", "yesterday", "7d", "30d", "custom"])
def test_narrow_and_full_rollups_give_the_same_figures(loaded: Shop, period: str) -> None:
    """Pages without a signature or template filter read the narrow tables; every
    message here has its region's one signature and template, so filtering on those
    reads the full tables and must give exactly the same figures, on every page."""
    for region in ("international", "mainland"):
        for iso in ("", "US", "CN"):
            narrow = stats.StatsFilter(region=region, period=period, start="2026-02-01",
                                       end="2026-03-10", iso_code=iso)
            full = [replace(narrow, signature_id=loaded.signatures[region]),
                    replace(narrow, template_id=loaded.templates[region])]
            pages: list[Any] = [stats.overview, stats.failures, stats.receipts,
                                stats.verification]
            if region == "international":
                pages.append(stats.countries)
            for page in pages:
                want = page(loaded.ctx, narrow, NOW)
                for f in full:
                    assert page(loaded.ctx, f, NOW) == want, (page.__name__, f)
    seen = stats.overview(loaded.ctx, stats.StatsFilter(region="international",
                                                        period=period, start="2026-02-01",
                                                        end="2026-03-10"), NOW)
    assert seen.total.requests > 0


@pytest.mark.parametrize("period", ["today", "7d", "30d"])
def test_verification_pages_are_the_whole_list_cut_in_pieces(loaded: Shop, session: Session,
                                                            period: str) -> None:
    """The page the console and API show is cut in SQL: its rows, their growth over
    the day before, and the total are those of the whole list."""
    for f in (stats.StatsFilter(region="international", period=period),
              stats.StatsFilter(region="international", period=period,
                                template_id=loaded.templates["international"]),
              stats.StatsFilter(region="mainland", period=period)):
        whole = stats.verification(loaded.ctx, f, NOW)
        assert whole
        for size in (1, 2, 100):
            pages = []
            for n in range(1, len(whole) // size + 3):
                rows, total = stats.verification_page(loaded.ctx, f, n, size, NOW)
                assert total == len(whole)
                pages += rows
            assert pages == whole, (f, size)
    with pytest.raises(ValidationError):
        stats.verification_page(loaded.ctx, stats.StatsFilter(), 1, 0, NOW)


def _country_counts(session: Session, first: datetime, last: datetime) -> dict[str, int]:
    month = _messages(session, "international", first, last)
    return {iso: sum(1 for m in month if m.iso_code == iso) for iso in {m.iso_code for m in month}}


def test_countries_read_account_wide_only_for_an_actor_who_sees_every_app(
        loaded: Shop, session: Session) -> None:
    """The account-wide daily table serves an actor who sees every application and
    filters none; one who sees some, or filters one, gets their own figures."""
    f = stats.StatsFilter(region="international", period="30d")
    first, last = _day(2026, 2, 9), _day(2026, 3, 11)
    everything = {c.iso_code: c.figures.requests for c in stats.countries(loaded.ctx, f, NOW)}
    assert everything == _country_counts(session, first, last)
    other = next(a for a in apps.list_apps(loaded.ctx)
                 if a.sdk_app_id == loaded.other)  # type: ignore[attr-defined]
    mine = {iso: sum(1 for m in _messages(session, "international", first, last, other.id)
                     if m.iso_code == iso) for iso in {"US", "GB", "DE", "FR"}}
    one = ctx_for(session, make_user(session, "o@example.com", policies=[json.dumps(
        {"version": "2.0", "statement": [{"effect": "allow", "action": ["sms:DescribeStatistics"],
                                          "resource": [f"sms:app/{other.sdk_app_id}"]}]})]))
    for who, flt in ((one, f), (loaded.ctx, replace(f, sdk_app_id=other.sdk_app_id))):
        got = {c.iso_code: c.figures.requests for c in stats.countries(who, flt, NOW)}
        assert got == {k: v for k, v in mine.items() if v} and got != everything
        us = stats.overview(who, replace(flt, iso_code="US"), NOW)
        assert us.total.requests == mine["US"]


def test_a_deleted_application_leaves_the_account_wide_figures(loaded: Shop,
                                                              session: Session) -> None:
    """Its messages go with it, and so do its figures on every page."""
    other = loaded.other  # type: ignore[attr-defined]
    apps.set_enabled(loaded.ctx, other, False)
    apps.delete_app(loaded.ctx, other, other)
    session.flush()
    f = stats.StatsFilter(region="international", period="30d")
    first, last = _day(2026, 2, 9), _day(2026, 3, 11)
    left = _country_counts(session, first, last)
    assert sum(left.values()) < sum(1 for r in ROWS if r[1] == "international")
    got = stats.countries(loaded.ctx, f, NOW)
    assert {c.iso_code: c.figures.requests for c in got} == left
    assert stats.overview(loaded.ctx, replace(f, iso_code="US"), NOW).total.requests == \
        left["US"]
    assert stats.overview(loaded.ctx, f, NOW).total.requests == sum(left.values())


def test_a_new_time_zone_counts_past_days_again_without_deleted_applications(
        loaded: Shop, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daily rollups are counted again by the new zone's days (a few rows at a time
    here, to cross chunk edges), and a deleted application's traffic stays out of the
    account-wide figures."""
    from app.services import accounts

    other = loaded.other  # type: ignore[attr-defined]
    apps.set_enabled(loaded.ctx, other, False)
    apps.delete_app(loaded.ctx, other, other)
    monkeypatch.setattr(rollups.rezone, "__defaults__", (3,))
    accounts.update_settings(loaded.ctx, account_type="enterprise", timezone="America/New_York",
                             intl_daily_quota=100, reply_callback_url="",
                             reply_callback_enabled=False)
    session.flush()
    york = ZoneInfo("America/New_York")
    now = NOW.astimezone(york)  # midnight starting 10 March, in New York
    f = stats.StatsFilter(region="international", period="7d")
    left = _country_counts(session, datetime(2026, 3, 4, tzinfo=york),
                           datetime(2026, 3, 11, tzinfo=york))
    assert left != _country_counts(session, _day(2026, 3, 4), _day(2026, 3, 11))
    got = stats.countries(loaded.ctx, f, now)
    assert {c.iso_code: c.figures.requests for c in got} == left
    assert stats.overview(loaded.ctx, f, now).total.requests == sum(left.values())
