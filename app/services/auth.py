"""Web login, throttled per (email, address) pair in Redis.

Every attempt is counted atomically *before* the password is checked, so concurrent
tries cannot slip past the limit. After `login_max_failures` attempts the pair is
refused for the window; each further lock-out of the same pair within a day doubles
it (capped at a day). Only the pair is locked: the same user from another address,
and other users behind the same address, can still sign in.
"""

from __future__ import annotations

import hashlib
import ipaddress

import redis as redis_lib
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import User
from app.services import passwords
from app.services.context import Settings
from app.services.errors import ServiceError

MAX_LOCK_SECONDS = 24 * 3600

# KEYS: attempts, strikes. ARGV: limit, window, max lock.
# Returns {attempt number, seconds until the pair may try again (0: go ahead)}.
_ATTEMPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local limit = tonumber(ARGV[1])
if n <= limit then return {n, 0} end
if n == limit + 1 then
  local strikes = redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  local lock = math.floor(math.min(tonumber(ARGV[2]) * 2 ^ (strikes - 1), tonumber(ARGV[3])))
  redis.call('EXPIRE', KEYS[1], lock)
end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 1 then ttl = 1 end
return {n, ttl}
"""


class LoginFailed(ServiceError):
    code = "LoginFailed"


class LoginThrottled(LoginFailed):
    code = "LoginThrottled"

    def __init__(self, retry_after: int) -> None:
        minutes = -(-retry_after // 60)
        wait = f"{minutes} minute{'s' if minutes > 1 else ''}"
        super().__init__(f"Too many failed attempts. Try again in {wait}.")
        self.retry_after = retry_after


def _source(ip: str) -> str:
    """Who is trying: the IPv4 address, or the IPv6 /64 network (one host holds a
    whole /64, so counting each address would not count at all)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _keys(email: str, ip: str) -> tuple[str, str]:
    # Hashed: bounded key length, and no email addresses lying around in Redis.
    pair = hashlib.sha256(f"{email}\n{_source(ip)}".encode()).hexdigest()
    return f"smsops:login:try:{pair}", f"smsops:login:strikes:{pair}"


def authenticate(
    db: Session, redis: redis_lib.Redis, settings: Settings, email: str, password: str, ip: str
) -> User:
    """Return the user, or raise LoginFailed with a message safe to show."""
    email = email.strip().lower()
    tries, strikes = _keys(email, ip)
    _attempt(redis, settings, tries, strikes)
    user = db.scalar(select(User).where(func.lower(User.email) == email))
    ok = passwords.verify(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        raise LoginFailed("Wrong email or password.")
    redis.delete(tries, strikes)
    user.last_login_at = utcnow()
    return user


def _attempt(redis: redis_lib.Redis, settings: Settings, tries: str, strikes: str) -> None:
    """Count one try before the password is checked; LoginThrottled past the limit."""
    _n, wait = redis.register_script(_ATTEMPT)(
        keys=[tries, strikes],
        args=[settings.login_max_failures, settings.login_window_seconds, MAX_LOCK_SECONDS])
    if int(wait) > 0:
        raise LoginThrottled(int(wait))


def check_current_password(redis: redis_lib.Redis, settings: Settings, user: User,
                           password: str) -> bool:
    """A signed-in user's current password, asked again (to change it): throttled per
    user as logins are per (email, address), whatever the address, so an open session
    is no way to guess it. LoginThrottled past the limit; a right answer clears it."""
    keys = (f"smsops:password:try:{user.id}", f"smsops:password:strikes:{user.id}")
    _attempt(redis, settings, *keys)
    if not passwords.verify(user.password_hash, password):
        return False
    redis.delete(*keys)
    return True
