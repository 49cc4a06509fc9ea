"""Web login with throttling of failed attempts (counted in Redis)."""

from __future__ import annotations

import redis as redis_lib
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import User
from app.services import passwords
from app.services.context import Settings
from app.services.errors import ServiceError


class LoginFailed(ServiceError):
    code = "LoginFailed"


def _keys(email: str, ip: str) -> tuple[str, str]:
    return f"smsops:login:email:{email}", f"smsops:login:ip:{ip}"


def authenticate(
    db: Session, redis: redis_lib.Redis, settings: Settings, email: str, password: str, ip: str
) -> User:
    """Return the user, or raise LoginFailed with a message safe to show."""
    email = email.strip().lower()
    by_email, by_ip = _keys(email, ip)
    window = settings.login_window_seconds
    limit = settings.login_max_failures
    counts = [int(c or 0) for c in redis.mget(by_email, by_ip)]
    # An address gets more tries than one mailbox, so a shared NAT is not locked out.
    if counts[0] >= limit or counts[1] >= limit * 10:
        raise LoginFailed(
            f"Too many failed attempts. Try again in {max(window // 60, 1)} minutes."
        )
    user = db.scalar(select(User).where(func.lower(User.email) == email))
    ok = passwords.verify(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        pipe = redis.pipeline()
        for key in (by_email, by_ip):
            # The window starts at the first failure (works on Redis 6.2, unlike EXPIRE NX).
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
        pipe.execute()
        raise LoginFailed("Wrong email or password.")
    redis.delete(by_email)
    user.last_login_at = utcnow()
    return user
