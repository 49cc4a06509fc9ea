"""Frequency limits and daily limits, counted atomically in Redis.

One Lua script checks every limit a message touches and, only if all pass,
counts it against all of them, so two workers racing for the last unit of a
limit cannot both win. A message refused later (e.g. no credit) is released.
"""

from __future__ import annotations

import copy
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
  local serial = nil
  if hold then
    serial = ARGV[a]; a = a + 1
    if serial == "" then serial = nil end
  end
  local refused = 0
  local kept = serial and redis.call("HEXISTS", hold, serial) == 1
  for i = 0, (kept and -1 or n - 1) do
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
  if refused == 0 and not kept then
    if serial then redis.call("HSET", hold, serial, 1) end
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
if hold then redis.call("PEXPIRE", hold, tonumber(ARGV[1])) end
return out
"""
RESERVE_MANY = "local a, k, hold = 1, 1, nil\n" + _RESERVE_LOOP
# The same for messages an earlier attempt may have reserved already (a bulk task's
# batch dispatched again after its transaction died: the same rows, the same serial
# numbers). KEYS[1]: a hash of the serials whose reservations are held; ARGV[1]: its
# lifetime (ms); each message's ARGV begins with its serial after its count. A held
# message passes without being checked or counted again; a message reserved here is
# added to the hash.
RESERVE_HELD = "local hold, a, k = KEYS[1], 2, 2\n" + _RESERVE_LOOP
# The same, after a guard checked in the same call (one round trip for a request):
# KEYS[1] the configuration token, which must still be ARGV[1] ("*": not checked);
# KEYS[2] a single-use key (the request's nonce), set for ARGV[2] seconds. Returns
# {"stale", current token} or {"replayed"} without reserving anything.
# Nonces are remembered only in Redis: one that restarted empty has forgotten those
# used before, so a request signed before its data began cannot be proven new and is
# refused (signed again, it passes). `since(key, ts)`: the key holds when this
# Redis's nonces began (unix s, set at the first use); true when `ts` is not earlier.
# A timestamp is whole seconds, so the second of the first use is refused too: a
# request used in that second before the restart cannot be told from one signed after
# it. A client whose request was in flight then signs it again (401 TimestampSkew).
_SINCE = """
local function since(key, ts)
  local began = redis.call("GET", key)
  if not began then
    redis.call("SET", key, tonumber(redis.call("TIME")[1]) + 1, "NX")
    began = redis.call("GET", key)
  end
  return tonumber(ts) >= tonumber(began)
end
"""
NONCES_SINCE_KEY = "smsops:nonce:since"
# KEYS[1] the configuration token, KEYS[2] the nonce, KEYS[3] NONCES_SINCE_KEY;
# ARGV[1] the token read ("*": not checked), ARGV[2] the nonce's lifetime (s), ARGV[3]
# the request's timestamp. Returns {"stale", current token}, {"early"} or
# {"replayed"} without reserving anything.
RESERVE_GUARDED = _SINCE + """
if ARGV[1] ~= "*" then
  local current = redis.call("GET", KEYS[1])
  if current ~= ARGV[1] then return {"stale", current or ""} end
end
if not since(KEYS[3], ARGV[3]) then return {"early"} end
if not redis.call("SET", KEYS[2], 1, "NX", "EX", tonumber(ARGV[2])) then
  return {"replayed"}
end
local a, k, hold = 4, 4, nil
""" + _RESERVE_LOOP
# A nonce used up alone (the other signed endpoints): KEYS[1] the nonce, KEYS[2]
# NONCES_SINCE_KEY, KEYS[3] (optional) a key read in the same call; ARGV[1] the
# nonce's lifetime, ARGV[2] the request's timestamp. Returns {status, value read}:
# "ok", "early" or "replayed".
USE_NONCE = _SINCE + """
local read = ""
if KEYS[3] then read = redis.call("GET", KEYS[3]) or "" end
if not since(KEYS[2], ARGV[2]) then return {"early", read} end
if not redis.call("SET", KEYS[1], 1, "NX", "EX", tonumber(ARGV[1])) then
  return {"replayed", read}
end
return {"ok", read}
"""
# KEYS[1] NONCES_SINCE_KEY: set when missing (see `nonces_began`).
NONCES_BEGIN = _SINCE + "since(KEYS[1], 0) return 1"


def nonces_began(conn: redis_lib.Redis) -> None:
    """Start the record of used nonces if this Redis has none (it restarted empty):
    the workers' sweeper calls this every few seconds, so the second a restart refuses
    is that of the restart itself, not that of the first request after it."""
    conn.eval(NONCES_BEGIN, 1, NONCES_SINCE_KEY)

# KEYS: one per check (after the hash of held serials, for RELEASE_HELD); ARGV per
# check: kind, amount, member. Undoes the counting; RELEASE_HELD also forgets the
# released messages' serials.
_RELEASE_LOOP = """
for i = first, #KEYS do
  local base = (i - first) * 3
  if ARGV[base + 1] == "w" then
    redis.call("ZREM", KEYS[i], ARGV[base + 3])
  else
    -- Never below zero: a counter that expired (a new day) or was never counted.
    local amount = tonumber(ARGV[base + 2])
    if tonumber(redis.call("GET", KEYS[i]) or "0") >= amount then
      redis.call("DECRBY", KEYS[i], amount)
    end
  end
  if hold then redis.call("HDEL", hold, ARGV[base + 3]) end
end
return 0
"""
RELEASE = "local first, hold = 1, nil\n" + _RELEASE_LOOP
RELEASE_HELD = "local first, hold = 2, KEYS[1]\n" + _RELEASE_LOOP

DAY_MS = 2 * 24 * 3600 * 1000  # a natural-day counter outlives its day, then expires
# How long a held reservation is remembered without use: far beyond any retry of a
# batch (a lease, a sweep), and within the day counters' lifetime.
HOLD_MS = 6 * 3600 * 1000


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
    signed_at: int  # the request's timestamp (unix s): see NONCES_SINCE_KEY


class Stale(Exception):
    """The configuration changed since the caller read it: read it again (`token`
    is the current one) and retry. Nothing was reserved or used up."""

    def __init__(self, token: bytes | None) -> None:
        super().__init__("configuration changed")
        self.token = token


class Replayed(Exception):
    """The single-use key was used already. Nothing was reserved."""


class SignedTooEarly(Exception):
    """Signed before this Redis began remembering nonces (it restarted empty): whether
    the nonce was used cannot be known. Nothing was reserved; sign again."""


@dataclass(frozen=True)
class Check:
    key: str
    kind: str  # "w" window | "c" day counter
    limit: int
    amount: int
    span_ms: int
    error_code: str  # what a refusal by this check is recorded as
    member: str = ""  # the message's serial number (a window's member; see holding)


def content_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Read-only counts for `Limiter.counted`. ARGV[1]: now (ms); ARGV[2]: lines of
# "key<TAB>window ms", a window of 0 being a plain counter. Returns the counts as one
# space-separated string: thousands of separate arguments and replies cost redis-py
# ~15 us each to pack and parse. The keys are data here, read as the reservation
# reads them (fine on a single Redis server, as every script of this module).
COUNTED = r"""
local now, out = tonumber(ARGV[1]), {}
for key, span in string.gmatch(ARGV[2], "([^\t\n]+)\t(%d+)\n") do
  span = tonumber(span)
  if span > 0 then
    out[#out + 1] = redis.call("ZCOUNT", key, "(" .. (now - span), "+inf")
  else
    out[#out + 1] = tonumber(redis.call("GET", key) or "0")
  end
end
return table.concat(out, " ")
"""
COUNTED_CHUNK = 2_000  # ~7 ms of Redis per call


# KEYS: pairs of day counters (from, to). Each `to` becomes what its `from` holds (not
# added: `to` may hold an older day of that date), with `from`'s time to live, or
# ARGV[1] ms without one. Atomic, so no reservation lands between the read and the set.
CARRY = """
for i = 1, #KEYS, 2 do
  local v = redis.call("GET", KEYS[i])
  if v then
    local ttl = redis.call("PTTL", KEYS[i])
    if ttl <= 0 then ttl = tonumber(ARGV[1]) end
    redis.call("SET", KEYS[i + 1], v, "PX", ttl)
  end
end
return 1
"""


class Limiter:
    def __init__(self, conn: redis_lib.Redis, hold: str | None = None) -> None:
        self.conn = conn
        # Reservations made through this limiter are remembered by message serial
        # in this hash (see RESERVE_HELD); None: not remembered (the send API, whose
        # failed requests give their reservations back themselves).
        self.hold = hold
        self._reserve = conn.register_script(RESERVE)
        self._release = conn.register_script(RELEASE)
        self._release_held = conn.register_script(RELEASE_HELD)
        self._reserve_many = conn.register_script(RESERVE_MANY)
        self._reserve_held = conn.register_script(RESERVE_HELD)
        self._reserve_guarded = conn.register_script(RESERVE_GUARDED)
        self._use_nonce = conn.register_script(USE_NONCE)

    def holding(self, hold: str) -> Limiter:
        """This limiter, remembering what it reserves in the hash `hold`: for work
        that may be done again after its transaction died (a bulk task's batch), so
        a message is checked and counted once however often it is dispatched. Every
        check of a message must carry its serial number as `member`. (A copy: the
        scripts are registered once.)"""
        held = copy.copy(self)
        held.hold = hold
        return held

    def forget(self, serials: list[str]) -> None:
        """The messages were written (their batch committed): nothing will reserve
        for them again, so they need not be remembered."""
        if self.hold and serials:
            self.conn.hdel(self.hold, *serials)

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
        keys: list[str] = [self.hold] if self.hold else []
        argv: list[str | int | bytes] = [HOLD_MS, now_ms] if self.hold else [now_ms]
        for checks in groups:
            argv.append(len(checks))
            if self.hold:
                argv.append(checks[0].member if checks else "")
            for c in checks:
                keys.append(c.key)
                argv += [c.kind, c.limit, c.amount, c.span_ms, c.member]
        if guard is None:
            reserve = self._reserve_held if self.hold else self._reserve_many
            refused = reserve(keys=keys, args=argv)
        elif self.hold:
            raise ValueError("a guarded reservation is never held")
        else:
            refused = self._reserve_guarded(
                keys=[guard.token_key, guard.once_key, NONCES_SINCE_KEY, *keys],
                args=[guard.token if guard.token is not None else "*", guard.once_ttl_s,
                      guard.signed_at, *argv])
            if refused and isinstance(refused[0], bytes):
                if refused[0] == b"stale":
                    raise Stale(refused[1] or None)
                if refused[0] == b"early":
                    raise SignedTooEarly()
                raise Replayed()
        return [checks[int(r) - 1] if int(r) else None
                for checks, r in zip(groups, refused, strict=True)]

    def release(self, checks: list[Check]) -> None:
        argv: list[str | int] = []
        for c in checks:
            argv += [c.kind, c.amount, c.member]
        if checks and self.hold:
            self._release_held(keys=[self.hold, *(c.key for c in checks)], args=argv)
        elif checks:
            self._release(keys=[c.key for c in checks], args=argv)

    def use_nonce(self, key: str, ttl_s: int, signed_at: int,
                  read_too: str | None = None) -> bytes | None:
        """Use up a request's nonce (raises Replayed or SignedTooEarly); returns the
        value of `read_too`, read in the same round trip."""
        status, value = self._use_nonce(
            keys=[key, NONCES_SINCE_KEY, *([read_too] if read_too else [])],
            args=[ttl_s, signed_at])
        if status == b"early":
            raise SignedTooEarly()
        if status == b"replayed":
            raise Replayed()
        return value or None

    def once(self, key: str, ttl_s: int) -> bool:
        """True the first time in `ttl_s` seconds: one alarm per event per period."""
        return bool(self.conn.set(key, 1, nx=True, ex=ttl_s))

    def used(self, key: str) -> int:
        return int(self.conn.get(key) or 0)

    def carry(self, pairs: list[tuple[str, str]], ttl_ms: int) -> None:
        """Each (from, to) day counter: `to` holds what `from` does (CARRY)."""
        for n in range(0, len(pairs), COUNTED_CHUNK):  # a few ms of Redis a call
            chunk = pairs[n:n + COUNTED_CHUNK]
            self.conn.eval(CARRY, 2 * len(chunk), *(k for pair in chunk for k in pair), ttl_ms)

    def carry_matching(self, pattern: str, old: str, new: str, ttl_ms: int) -> int:
        """Every key matching `pattern` (ending in `old`) carried to the same key ending
        in `new`: SCAN, so Redis is never held for the whole keyspace. Returns how many."""
        pairs: list[tuple[str, str]] = []
        for key in self.conn.scan_iter(match=pattern, count=10_000):
            name = key.decode() if isinstance(key, bytes) else str(key)
            if name.endswith(old):
                pairs.append((name, name[:len(name) - len(old)] + new))
        self.carry(pairs, ttl_ms)
        return len(pairs)

    def counted(self, keys: list[tuple[str, int]], now_ms: int) -> list[int]:
        """What each (key, window ms) holds now, as the reservation reads it: a counter's
        value (window 0), or a sliding window's entries within the window. Read only;
        a script call per COUNTED_CHUNK keys (one call for them all would hold Redis up
        for everyone else). Keys hold no tab or line break (ours: numbers and digests)."""
        found: list[int] = []
        for start in range(0, len(keys), COUNTED_CHUNK):
            lines = "".join(f"{key}\t{span}\n" for key, span in keys[start:start + COUNTED_CHUNK])
            found += map(int, self.conn.eval(COUNTED, 0, now_ms, lines).split())
        return found
