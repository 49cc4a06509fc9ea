"""Statistics pages and the SMS log at volume, on PostgreSQL.

Makes a database of its own, fills it with N messages' worth of hourly rollups
(spread over 60 days, 20 applications, 50 countries, a realistic outcome and
error mix) and M message rows over the same span, then times every statistics
query (the service calls behind the five pages) and the SMS log with common
filters, and prints the plans the SMS log gets (EXPLAIN).

    .venv/bin/python bench/stats.py --rollup-messages 10000000 --message-rows 1000000

The rollups are generated in SQL (INSERT ... SELECT over generate_series), as the
pipeline would have left them; message rows likewise; the narrow rollup tables
(migration 0022) are filled from them by that migration itself: the data is made
at revision 0021, then upgraded to --revision (timed). The database is dropped at
the end unless --keep.

Comparing two trees on one data set (base vs this branch, alternated):

    .venv/bin/python bench/stats.py --revision 0021 --keep --runs 0   # prints the URL
    PYTHONPATH=/tmp/base .venv/bin/python bench/stats.py --url URL   # base, schema 0021
    .venv/bin/python bench/stats.py --url URL --upgrade              # times 0022, measures
    PYTHONPATH=/tmp/base .venv/bin/python bench/stats.py --url URL   # base again
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import text

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_KEY = "YmVuY2gtb25seS10aHJvd2F3YXkta2V5LTMyLWJ5dGU="  # 32 bytes, never a real secret
DAYS, APPS, COUNTRIES = 60, 20, 50
ISO = ["US", "GB", "DE", "FR", "SG", "JP", "KR", "IN", "ID", "BR", "MX", "CA", "AU", "IT",
       "ES", "NL", "SE", "NO", "DK", "FI", "PL", "PT", "IE", "BE", "CH", "AT", "CZ", "HU",
       "RO", "GR", "TR", "IL", "AE", "SA", "EG", "ZA", "NG", "KE", "AR", "CL", "CO", "PE",
       "VN", "TH", "MY", "PH", "NZ", "HK", "TW", "MO"]
# outcome, error code, carrier code, share of messages
MIX = [("delivered", "", "", 0.80), ("failed", "FailedOperation.Undelivered", "UNDELIV", 0.05),
       ("failed", "FailedOperation.Undelivered", "EXPIRED", 0.02),
       ("refused", "FailedOperation.GatewayRejected", "", 0.03),
       ("no_receipt", "FailedOperation.NoReceipt", "", 0.04),
       ("rejected", "LimitExceeded.PhoneNumberDailyLimit", "", 0.03),
       ("rejected", "InvalidParameterValue.IncorrectPhoneNumber", "", 0.02),
       ("submitted", "", "", 0.01)]
COUNTRIES_PER_APP_HOUR = 5
DIMS = ("account_id, app_id, region, iso_code, signature_id, template_id, sms_type, "
        "verification, outcome, error_code, carrier_code")


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def setup(url: str, rollup_messages: int, message_rows: int,
          revision: str = "head") -> tuple[int, list[int]]:
    from app import migrate
    from app.db import Database
    from app.services import apps
    from app.services.accounts import ensure_account, system_actor
    from app.services.context import Ctx

    migrate.upgrade(url, "0021")
    db = Database(url)
    with db.unit_of_work() as s:
        account = ensure_account(s)
        ctx = Ctx(s, system_actor(account))
        made = [apps.create_app(ctx, name=f"App {n}")[0] for n in range(APPS)]
        app_ids = [a.id for a in made]
        account_id = account.id
    cells = DAYS * 24 * APPS * COUNTRIES_PER_APP_HOUR
    per_cell = max(1, rollup_messages // cells)
    mix_values = ", ".join(f"('{o}', '{e}', '{c}', {share})" for o, e, c, share in MIX)
    iso_array = "ARRAY[" + ", ".join(f"'{i}'" for i in ISO) + "]"
    app_array = "ARRAY[" + ", ".join(str(i) for i in app_ids) + "]"
    t0 = time.perf_counter()
    with db.engine.begin() as conn:
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        # Rollups: hour x app x 5 countries x outcome mix; verification for 3 apps in 4.
        conn.execute(text(f"""
            INSERT INTO stat_rollup (hour, account_id, app_id, region, iso_code, signature_id,
                template_id, sms_type, verification, outcome, error_code, carrier_code,
                count, billed)
            SELECT date_trunc('hour', now()) - make_interval(hours => h), :acc,
                   ({app_array})[a], 'international',
                   ({iso_array})[1 + ((a * 7 + c * 11 + h) % {COUNTRIES})], a, a * 10,
                   CASE WHEN a % 4 = 0 THEN 'marketing' ELSE 'verification' END, a % 4 <> 0,
                   m.o, m.e, m.cc,
                   greatest(1, round({per_cell} * m.s * (0.5 + random()))::bigint),
                   greatest(1, round({per_cell} * m.s * (0.5 + random()))::bigint)
            FROM generate_series(0, {DAYS * 24 - 1}) AS h,
                 generate_series(1, {APPS}) AS a,
                 generate_series(1, {COUNTRIES_PER_APP_HOUR}) AS c,
                 (VALUES {mix_values}) AS m(o, e, cc, s)
            ON CONFLICT DO NOTHING"""), {"acc": account_id})
        # The daily rows the pipeline keeps beside them (local days, Asia/Shanghai).
        conn.execute(text(f"""
            INSERT INTO stat_rollup_daily (day, {DIMS}, count, billed)
            SELECT (hour AT TIME ZONE 'Asia/Shanghai')::date, {DIMS}, sum(count), sum(billed)
            FROM stat_rollup GROUP BY 1, {DIMS}"""))
        t1 = time.perf_counter()
        # Ids grow with time, as the API and tasks write them (newest = highest id).
        conn.execute(text(f"""
            INSERT INTO message (account_id, app_id, serial_no, request_id, region,
                phone_number, iso_code, signature_id, template_id, sms_type, content,
                encoding, fee, status, error_code, created_at)
            SELECT :acc, ({app_array})[1 + (g % {APPS})], md5(g::text), 'bench',
                   'international', '+1' || (2000000000 + (g::bigint * 7919) % 7999999999)::text,
                   ({iso_array})[1 + (g % {COUNTRIES})], 1 + g % {APPS},
                   10 * (1 + g % {APPS}), 'verification',
                   'Your code is 123456', 'GSM', 1,
                   CASE WHEN g % 19 = 0 THEN 'failed' WHEN g % 31 = 0 THEN 'rejected'
                        ELSE 'delivered' END,
                   CASE WHEN g % 19 = 0 THEN 'FailedOperation.Undelivered'
                        WHEN g % 31 = 0 THEN 'LimitExceeded.PhoneNumberDailyLimit' END,
                   now() - make_interval(secs => (1 - g::float / {message_rows}) * {DAYS} * 86400)
            FROM generate_series(1, {message_rows}) AS g"""),
                     {"acc": account_id})
        t2 = time.perf_counter()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        rows = conn.execute(text("SELECT count(*), sum(count) FROM stat_rollup")).one()
        days = conn.execute(text("SELECT count(*) FROM stat_rollup_daily")).scalar_one()
    print(f"rollups: {rows[0]:,} hourly and {days:,} daily rows for {int(rows[1]):,} "
          f"messages in {t1 - t0:.1f} s; "
          f"message rows: {message_rows:,} in {t2 - t1:.1f} s")
    db.engine.dispose()
    upgrade(url, revision)
    return account_id, app_ids


def upgrade(url: str, revision: str = "head") -> None:
    from sqlalchemy import create_engine

    from app import migrate

    t = time.perf_counter()
    migrate.upgrade(url, revision)
    engine = create_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    print(f"schema at {found} ({time.perf_counter() - t:.1f} s to upgrade)")


def measure(url: str, runs: int) -> None:
    from app.db import Database
    from app.models import Account
    from app.services import sending, stats
    from app.services.accounts import system_actor
    from app.services.context import Ctx

    db = Database(url)
    s = db.sessions()
    account = s.query(Account).one()
    ctx = Ctx(s, system_actor(account))
    sdk, app_id = s.execute(text("SELECT sdk_app_id, id FROM application "
                                 "ORDER BY id LIMIT 1")).one()
    # The data's signature and template of the first application (see setup).
    sig, tmpl = 1, 10
    intl = "international"
    today = datetime.now(UTC).astimezone(ZoneInfo(account.timezone)).date()
    first, last = (today - timedelta(days=91)).isoformat(), today.isoformat()

    def f(period: str = "30d", **kw: Any) -> Any:
        if period == "custom":
            kw.update(start=first, end=last)
        return stats.StatsFilter(region=intl, period=period, **kw)

    cases: list[tuple[str, Callable[[], Any]]] = []
    for period in ("today", "yesterday", "7d", "30d", "custom"):
        cases.append((f"overview {period}", lambda p=period: stats.overview(ctx, f(p))))
    for label, kw in (("one app", {"sdk_app_id": sdk}), ("one country", {"iso_code": "US"}),
                      ("one template", {"template_id": tmpl}),
                      ("one signature", {"signature_id": sig})):
        cases.append((f"overview 30d, {label}", lambda kw=kw: stats.overview(ctx, f(**kw))))
    cases += [
        ("overview today, one template", lambda: stats.overview(ctx, f("today",
                                                                        template_id=tmpl))),
        ("failures today", lambda: stats.failures(ctx, f("today"))),
        ("failures 30d", lambda: stats.failures(ctx, f())),
        ("failures custom (92 days)", lambda: stats.failures(ctx, f("custom"))),
        ("failures 30d, one country", lambda: stats.failures(ctx, f(iso_code="US"))),
        ("failures 30d, one template", lambda: stats.failures(ctx, f(template_id=tmpl))),
        ("receipts today", lambda: stats.receipts(ctx, f("today"))),
        ("receipts 30d", lambda: stats.receipts(ctx, f())),
        ("receipts 30d, one app", lambda: stats.receipts(ctx, f(sdk_app_id=sdk))),
        ("receipts 30d, one country", lambda: stats.receipts(ctx, f(iso_code="US"))),
        ("countries 7d", lambda: stats.countries(ctx, f("7d"))),
        ("countries 30d", lambda: stats.countries(ctx, f())),
        ("countries custom (92 days)", lambda: stats.countries(ctx, f("custom"))),
        ("countries 30d, one signature", lambda: stats.countries(ctx, f(signature_id=sig))),
        ("countries 30d, one app", lambda: stats.countries(ctx, f(sdk_app_id=sdk))),
        ("overview custom, one app", lambda: stats.overview(ctx, f("custom", sdk_app_id=sdk))),
    ]
    # What the verification page reads: its first page where the tree pages it
    # (stats.verification_page), every application-hour of the period before.
    paged = getattr(stats, "verification_page", None)

    def codes(flt: Any) -> Any:
        return paged(ctx, flt, 1) if paged else stats.verification(ctx, flt)

    cases += [
        ("verification today", lambda: codes(f("today"))),
        ("verification 7d", lambda: codes(f("7d"))),
        ("verification 30d", lambda: codes(f())),
        ("verification 30d, one template", lambda: codes(f(template_id=tmpl))),
    ]
    log_fields = set(getattr(sending.LogFilter, "__dataclass_fields__", {}))
    logs: list[tuple[str, dict[str, Any]]] = [
        ("SMS log 7d, first page", {"period": "7d"}),
        ("SMS log today, first page", {"period": "today"}),
        ("SMS log 30d, page 20", {"period": "30d", "page": 20}),
        ("SMS log 30d, number prefix +1200", {"period": "30d", "phone_number": "+1200"}),
        ("SMS log 30d, one app", {"period": "30d", "sdk_app_id": sdk}),
        ("SMS log 30d, one app, failed", {"period": "30d", "sdk_app_id": sdk,
                                          "status": "failed"}),
        ("SMS log 30d, rejected", {"period": "30d", "status": "rejected"}),
        ("SMS log 30d, one app, rejected, page 10", {"period": "30d", "sdk_app_id": sdk,
                                                     "status": "rejected", "page": 10}),
        ("SMS log 30d, number +1200 and more digits", {"period": "30d",
                                                       "phone_number": "+1200001"}),
        ("SMS log 30d, one template", {"period": "30d", "template_id": tmpl}),
        ("SMS log 30d, one signature", {"period": "30d", "signature_id": sig}),
        ("SMS log 30d, one country", {"period": "30d", "iso_code": "DE"}),
    ]
    for label, kw in logs:
        if set(kw) <= log_fields:  # filters this tree's SMS log has
            cases.append((label, lambda kw=kw: sending.log(ctx, sending.LogFilter(**kw))))
    if not runs:
        return
    print("\n| query | runs | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|")
    for name, call in cases:
        call()  # warm
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            call()
            times.append((time.perf_counter() - t) * 1000)
            s.rollback()  # a fresh transaction per request, as the web has
        print(f"| {name} | {runs} | {statistics.median(times):.1f} | {_pct(times, 95):.1f} "
              f"| {max(times):.1f} |")
    print("\nSMS log plans (EXPLAIN of the ids the count and page read):")
    month = "created_at > now() - interval '30 days'"
    for label, where, order in (
            ("number prefix", "account_id = :acc AND phone_number LIKE '+1200%'", "id + 0"),
            ("one app", "app_id = :app", "id"),
            ("one app, failed", "app_id = :app AND status = 'failed'", "id"),
            ("rejected", "account_id = :acc AND status = 'rejected'", "id")):
        plan = s.execute(text(
            f"EXPLAIN SELECT id FROM message WHERE {where} AND {month} "
            f"ORDER BY {order} DESC LIMIT 1001"),
            {"acc": account.id, "app": app_id}).scalars().all()
        print(f"- {label}: " + " / ".join(p.strip() for p in plan if "Scan" in p))
    s.close()
    db.engine.dispose()


def main() -> None:
    import os

    # AppKeys are encrypted at rest: a fixed throwaway key for these throwaway
    # databases, so a kept one can be measured again (--url) by another process.
    os.environ.setdefault("SMSOPS_ENCRYPTION_KEY", BENCH_KEY)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rollup-messages", type=int, default=10_000_000)
    parser.add_argument("--message-rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--revision", default="head", help="schema to measure on")
    parser.add_argument("--url", help="measure an existing database (from --keep)")
    parser.add_argument("--upgrade", action="store_true", help="with --url: upgrade first")
    args = parser.parse_args()
    if args.url:
        if args.upgrade:
            upgrade(args.url)
        measure(args.url, args.runs)
        return
    name = f"smsops_bench_stats_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + \
        f"/{name}"
    try:
        setup(url, args.rollup_messages, args.message_rows, args.revision)
        measure(url, args.runs)
    finally:
        if args.keep:
            print(f"kept: --url {url}")
        else:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
