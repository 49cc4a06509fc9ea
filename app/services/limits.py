"""Frequency limits and daily limits, counted atomically in Redis.

One Lua script checks every limit a message touches and, only if all pass,
counts it against all of them, so two workers racing for the last unit of a
limit cannot both win. A message refused later (e.g. no credit) is released.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis as redis_lib

# KEYS: one key per check. ARGV: now (ms), then per check: kind, limit, amount,
# window or ttl (ms), member. Kinds: "w" sliding window of messages (sorted set),
# "c" counter for the natural day (amount = billed items). Returns 0 when reserved,
# else the 1-based index of the first check that refused.
RESERVE = """
local now = tonumber(ARGV[1])
local n = #KEYS
for i = 1, n do
  local base = 1 + (i - 1) * 5
  local kind, limit, amount, span = ARGV[base + 1], tonumber(ARGV[base + 2]),
    tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  if kind == "w" then
    redis.call("ZREMRANGEBYSCORE", KEYS[i], "-inf", now - span)
    if redis.call("ZCARD", KEYS[i]) + amount > limit then return i end
  else
    local used = tonumber(redis.call("GET", KEYS[i]) or "0")
    if used + amount > limit then return i end
  end
end
for i = 1, n do
  local base = 1 + (i - 1) * 5
  local kind, amount, span, member = ARGV[base + 1], tonumber(ARGV[base + 3]),
    tonumber(ARGV[base + 4]), ARGV[base + 5]
  if kind == "w" then
    redis.call("ZADD", KEYS[i], now, member)
    redis.call("PEXPIRE", KEYS[i], span)
  else
    redis.call("INCRBY", KEYS[i], amount)
    redis.call("PEXPIRE", KEYS[i], span)
  end
end
return 0
"""

# Many messages in one call (a whole request): in order, each message's checks are
# tested and, only if all pass, counted, exactly as one RESERVE call per message
# would. KEYS: every check's key, message after message. ARGV: now (ms), then per
# message: its number of checks, then per check: kind, limit, amount, span, member.
# Returns one entry per message: 0 when reserved, else the 1-based index (within
# that message) of the first check that refused. `a` and `k` are where the
# reservation's ARGV and KEYS start (after the guard's, when there is one).
_RESERVE_LOOP = """
local now = tonumber(ARGV[a]); a = a + 1
local out = {}
while a <= #ARGV do
  local n = tonumber(ARGV[a]); a = a + 1
  local refused = 0
  for i = 0, n - 1 do
    local b = a + i * 5
    local kind, limit, amount, span = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]),
      tonumber(ARGV[b + 3])
    local key = KEYS[k + i]
    if kind == "w" then
      redis.call("ZREMRANGEBYSCORE", key, "-inf", now - span)
      if redis.call("ZCARD", key) + amount > limit then refused = i + 1; break end
    else
      local used = tonumber(redis.call("GET", key) or "0")
      if used + amount > limit then refused = i + 1; break end
    end
  end
  if refused == 0 then
    for i = 0, n - 1 do
      local b = a + i * 5
      local key = KEYS[k + i]
      if ARGV[b] == "w" then
        redis.call("ZADD", key, now, ARGV[b + 4])
        redis.call("PEXPIRE", key, tonumber(ARGV[b + 3]))
      else
        redis.call("INCRBY", key, tonumber(ARGV[b + 2]))
        redis.call("PEXPIRE", key, tonumber(ARGV[b + 3]))
      end
    end
  end
  out[#out + 1] = refused
  a = a + n * 5
  k = k + n
end
return out
"""
RESERVE_MANY = "local a, k = 1, 1\n" + _RESERVE_LOOP
# The same, after a guard checked in the same call (one round trip for a request):
# KEYS[1] the configuration token, which must still be ARGV[1] ("*": not checked);
# KEYS[2] a single-use key (the request's nonce), set for ARGV[2] seconds. Returns
# {"stale", current token} or {"replayed"} without reserving anything.
RESERVE_GUARDED = """
if ARGV[1] ~= "*" then
  local current = redis.call("GET", KEYS[1])
  if current ~= ARGV[1] then return {"stale", current or ""} end
end
if not redis.call("SET", KEYS[2], 1, "NX", "EX", tonumber(ARGV[2])) then
  return {"replayed"}
end
local a, k = 3, 3
""" + _RESERVE_LOOP

RELEASE = """
for i = 1, #KEYS do
  local base = (i - 1) * 3
  if ARGV[base + 1] == "w" then
    redis.call("ZREM", KEYS[i], ARGV[base + 3])
  else
    redis.call("DECRBY", KEYS[i], tonumber(ARGV[base + 2]))
  end
end
return 0
"""

DAY_MS = 2 * 24 * 3600 * 1000  # a natural-day counter outlives its day, then expires


@dataclass(frozen=True)
class Guard:
    """What must hold for a reservation to be made, checked in the same Redis call:
    the configuration the caller read is still current (`token` is the value of
    `token_key` it read under; None: it read no cache, nothing to compare), and
    `once_key` (a request's nonce) was never used; it is then kept for `once_ttl_s`."""

    token_key: str
    token: bytes | None
    once_key: str
    once_ttl_s: int


class Stale(Exception):
    """The configuration changed since the caller read it: read it again (`token`
    is the current one) and retry. Nothing was reserved or used up."""

    def __init__(self, token: bytes | None) -> None:
        super().__init__("configuration changed")
        self.token = token


class Replayed(Exception):
    """The single-use key was used already. Nothing was reserved."""


@dataclass(frozen=True)
class Check:
    key: str
    kind: str  # "w" window | "c" day counter
    limit: int
    amount: int
    span_ms: int
    error_code: str  # what a refusal by this check is recorded as
    member: str = ""


def content_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Limiter:
    def __init__(self, conn: redis_lib.Redis) -> None:
        self.conn = conn
        self._reserve = conn.register_script(RESERVE)
        self._release = conn.register_script(RELEASE)
        self._reserve_many = conn.register_script(RESERVE_MANY)
        self._reserve_guarded = conn.register_script(RESERVE_GUARDED)

    def reserve(self, checks: list[Check], now_ms: int) -> Check | None:
        """None when every check passed and was counted; else the check that refused."""
        if not checks:
            return None
        argv: list[str | int] = [now_ms]
        for c in checks:
            argv += [c.kind, c.limit, c.amount, c.span_ms, c.member]
        refused = int(self._reserve(keys=[c.key for c in checks], args=argv))
        return checks[refused - 1] if refused else None

    def reserve_many(self, groups: list[list[Check]], now_ms: int,
                     guard: Guard | None = None) -> list[Check | None]:
        """`reserve` for many messages in one round trip, in order: for each group,
        None when reserved, else the check that refused. With a `guard`, it is
        checked first in the same call (raises Stale or Replayed)."""
        if not any(groups) and guard is None:
            return [None] * len(groups)
        keys: list[str] = []
        argv: list[str | int | bytes] = [now_ms]
        for checks in groups:
            argv.append(len(checks))
            for c in checks:
                keys.append(c.key)
                argv += [c.kind, c.limit, c.amount, c.span_ms, c.member]
        if guard is None:
            refused = self._reserve_many(keys=keys, args=argv)
        else:
            refused = self._reserve_guarded(
                keys=[guard.token_key, guard.once_key, *keys],
                args=[guard.token if guard.token is not None else "*", guard.once_ttl_s,
                      *argv])
            if refused and isinstance(refused[0], bytes):
                if refused[0] == b"stale":
                    raise Stale(refused[1] or None)
                raise Replayed()
        return [checks[int(r) - 1] if int(r) else None
                for checks, r in zip(groups, refused, strict=True)]

    def release(self, checks: list[Check]) -> None:
        argv: list[str | int] = []
        for c in checks:
            argv += [c.kind, c.amount, c.member]
        if checks:
            self._release(keys=[c.key for c in checks], args=argv)

    def once(self, key: str, ttl_s: int) -> bool:
        """True the first time in `ttl_s` seconds: one alarm per event per period."""
        return bool(self.conn.set(key, 1, nx=True, ex=ttl_s))

    def used(self, key: str) -> int:
        return int(self.conn.get(key) or 0)
