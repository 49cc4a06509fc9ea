"""The request path is set-based: one Redis script call for every limit of every
number, one credit query, whatever the number of numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.models import CreditPackage
from app.services.limits import Limiter
from tests.conftest import Backend
from tests.sending.conftest import Shop


class CountingRedis(redis.Redis):
    """A real client that also counts the commands it sends."""

    sent: list[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


def test_a_200_number_request_makes_one_limit_call_and_one_credit_query(
    shop: Shop, session: Session, backend: Backend
) -> None:
    now = datetime.now(UTC)
    session.add_all([
        CreditPackage(account_id=shop.app.account_id, name="soon", size=150, remaining=150,
                      expires_at=now + timedelta(days=1)),
        CreditPackage(account_id=shop.app.account_id, name="late", size=40, remaining=40,
                      expires_at=now + timedelta(days=60))])
    shop.app.mainland_daily_limit = 10_000  # a limit per message, counted in Redis
    shop.app.freq_hour_enabled, shop.app.freq_hour_limit = True, 5  # and one per number
    session.flush()
    conn = CountingRedis.from_url(backend.redis_url)
    conn.sent = []
    shop.limiter = Limiter(conn)
    conn.sent.clear()  # script registration is once per process
    statements: list[str] = []
    engine = session.get_bind()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        codes = shop.codes([f"1380000{n:04d}" for n in range(200)], template="mainland")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert codes == ["Ok"] * 190 + ["FailedOperation.InsufficientBalanceInSmsPackage"] * 10
    credit_reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")
                    and "credit_package" in s]
    assert len(credit_reads) == 1
    # One script call reserves every limit; one more gives back the 10 unpaid numbers.
    # (A first use of a script is retried once after SCRIPT LOAD: not another call.)
    loads = conn.sent.count("SCRIPT LOAD")
    assert conn.sent.count("EVALSHA") - loads == 2
    assert len(conn.sent) - 2 * loads == 2
