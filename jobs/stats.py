"""Statistics upkeep outside a request."""

from __future__ import annotations

from app.db import utcnow
from app.models import Account
from app.services import rollups, sending
from app.services.limits import Limiter
from jobs import runtime


def rezone(account_id: int, zone: str) -> None:
    """The daily rollups counted again from the hourly ones, a while after a change of
    the account's time zone: a batch counted while the change committed may have
    taken the old zone's date (it read the zone before it waited on the change's
    locks). Nothing if the zone changed again since (that change comes back too)."""
    with runtime.unit_of_work() as session:
        account = session.get(Account, account_id)
        if account is not None and account.timezone == zone:
            rollups.rezone(session, account_id, zone)


def carry_frequency(account_id: int, old_zone: str, new_zone: str) -> int:
    """The numbers' daily frequency counts of today, under the new zone's date."""
    app = runtime.app()
    with runtime.unit_of_work() as session:
        return sending.carry_frequency(session, Limiter(app.extensions["redis"]), account_id,
                                       old_zone, new_zone, utcnow())
