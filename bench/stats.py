"""Statistics pages and the SMS log at volume, on PostgreSQL.

Makes a database of its own, fills it with N messages' worth of hourly rollups
(spread over 60 days, 20 applications, 50 countries, a realistic outcome and
error mix) and M message rows over the same span, then times every statistics
query (the service calls behind the five pages) and the SMS log with common
filters, and prints the plans the SMS log gets (EXPLAIN).

    .venv/bin/python bench/stats.py --rollup-messages 10000000 --message-rows 1000000

The rollups are generated in SQL (INSERT ... SELECT over generate_series), as the
pipeline would have left them; message rows likewise. The database is dropped at
the end unless --keep.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import text

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
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


def setup(url: str, rollup_messages: int, message_rows: int) -> tuple[int, list[int]]:
    from app import migrate
    from app.db import Database
    from app.services import apps
    from app.services.accounts import ensure_account, system_actor
    from app.services.context import Ctx

    migrate.upgrade(url)
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
        conn.execute(text(f"""
            INSERT INTO message (account_id, app_id, serial_no, request_id, region,
                phone_number, iso_code, sms_type, content, encoding, fee, status,
                error_code, created_at)
            SELECT :acc, ({app_array})[1 + (g % {APPS})], md5(g::text), 'bench',
                   'international', '+1' || (2000000000 + (g * 7919) % 7999999999)::text,
                   ({iso_array})[1 + (g % {COUNTRIES})], 'verification',
                   'Your code is 123456', 'GSM', 1,
                   CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 33 = 0 THEN 'rejected'
                        ELSE 'delivered' END,
                   CASE WHEN g % 20 = 0 THEN 'FailedOperation.Undelivered' END,
                   now() - make_interval(secs => (g::float / {message_rows}) * {DAYS} * 86400)
            FROM generate_series(1, {message_rows}) AS g"""),
                     {"acc": account_id})
        t2 = time.perf_counter()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE stat_rollup"))
        conn.execute(text("VACUUM ANALYZE stat_rollup_daily"))
        conn.execute(text("VACUUM ANALYZE message"))
        rows = conn.execute(text("SELECT count(*), sum(count) FROM stat_rollup")).one()
        days = conn.execute(text("SELECT count(*) FROM stat_rollup_daily")).scalar_one()
    print(f"rollups: {rows[0]:,} hourly and {days:,} daily rows for {int(rows[1]):,} "
          f"messages in {t1 - t0:.1f} s; "
          f"message rows: {message_rows:,} in {t2 - t1:.1f} s")
    db.engine.dispose()
    return account_id, app_ids


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
    sdk = s.execute(text("SELECT sdk_app_id FROM application ORDER BY id LIMIT 1")).scalar()
    intl = "international"
    cases: list[tuple[str, Callable[[], Any]]] = []
    for period in ("today", "7d", "30d"):
        f = stats.StatsFilter(region=intl, period=period)
        cases.append((f"overview {period}", lambda f=f: stats.overview(ctx, f)))
    f30 = stats.StatsFilter(region=intl, period="30d")
    cases += [
        ("overview 30d, one app", lambda: stats.overview(ctx, stats.StatsFilter(
            region=intl, period="30d", sdk_app_id=sdk))),
        ("overview 30d, one country", lambda: stats.overview(ctx, stats.StatsFilter(
            region=intl, period="30d", iso_code="US"))),
        ("failures 30d", lambda: stats.failures(ctx, f30)),
        ("receipts 30d", lambda: stats.receipts(ctx, f30)),
        ("countries 30d", lambda: stats.countries(ctx, f30)),
        ("verification today", lambda: stats.verification(ctx, stats.StatsFilter(
            region=intl, period="today"))),
        ("verification 7d", lambda: stats.verification(ctx, stats.StatsFilter(
            region=intl, period="7d"))),
        ("SMS log 7d, first page", lambda: sending.log(ctx, sending.LogFilter(period="7d"))),
        ("SMS log 30d, number prefix +1200", lambda: sending.log(ctx, sending.LogFilter(
            period="30d", phone_number="+1200"))),
        ("SMS log 30d, one app, failed", lambda: sending.log(ctx, sending.LogFilter(
            period="30d", sdk_app_id=sdk, status="failed"))),
    ]
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
    print("\nSMS log plans (EXPLAIN):")
    for label, where in (("number prefix", "phone_number LIKE '+1200%'"),
                         ("one app", "app_id = (SELECT id FROM application LIMIT 1)")):
        plan = s.execute(text(
            f"EXPLAIN SELECT * FROM message WHERE {where} AND created_at > now() - "
            "interval '30 days' ORDER BY id DESC LIMIT 50")).scalars().all()
        print(f"- {label}: " + " / ".join(p.strip() for p in plan if "Scan" in p))
    s.close()
    db.engine.dispose()


def main() -> None:
    import os

    from cryptography.fernet import Fernet

    # AppKeys are encrypted at rest: a throwaway key for this throwaway database.
    os.environ.setdefault("SMSOPS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rollup-messages", type=int, default=10_000_000)
    parser.add_argument("--message-rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    name = f"smsops_bench_stats_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + \
        f"/{name}"
    try:
        setup(url, args.rollup_messages, args.message_rows)
        measure(url, args.runs)
    finally:
        if not args.keep:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
