"""A unique constraint the database enforced against a concurrent request.

A service checks that a name (or a number) is free before it writes, but two requests
can both pass the check before either commits; the database's unique constraint then
refuses the second. `taken` turns that refusal into the service's own error, the one
its check would have given a moment later, so every adapter shows it as it shows the
check's (a form error, a JSON 400/409, a Slack reply) and never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.services.errors import Conflict, ServiceError

SAME_TIME = ("Another request saved the same {what} at the same time; nothing was changed "
             "by this one. Look again to see what is saved now.")


def is_unique_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    name = getattr(orig, "sqlite_errorname", "")
    return name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY") or (
        "UNIQUE constraint failed" in str(orig))


@contextmanager
def taken(db: Session, error: ServiceError) -> Iterator[None]:
    """Flush the block's writes; a unique constraint they break becomes `error`.

    The failed flush has already ended the transaction in the database; the session is
    rolled back here too so the adapter can read again (to render its form) before it
    ends the unit of work as on any ServiceError. Nothing of the request is kept."""
    try:
        yield
        db.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        db.rollback()
        raise error from None


def same_time(what: str) -> Conflict:
    """The error for an add that is harmless to repeat (a country, an allowlisted
    number, a mute entry): the other request already did it."""
    return Conflict(SAME_TIME.format(what=what))
