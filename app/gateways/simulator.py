"""The in-process simulator: the default gateway, and the only stand-in for a carrier.

Realistic on purpose: a latency per batch, carrier refusals and delivery failures
at configurable rates by carrier code, lost receipts, receipts after a delay. And
test numbers with a fixed outcome, so people and tests can see each path:

| number (mainland / international) | outcome |
|---|---|
| +8613900000001 / +14155550101 | delivered |
| +8613900000002 / +14155550102 | refused by the carrier at submission (`MK:0012`) |
| +8613900000003 / +14155550103 | accepted, then undelivered (`UNDELIV`) |
| +8613900000004 / +14155550104 | accepted, no receipt ever |

Settings (SMSOPS_SIMULATOR_*): LATENCY_MS (per batch, default 0), REFUSE_RATES and
UNDELIVERED_RATES (JSON objects of carrier code → share, e.g.
{"MK:0012": 0.01, "MK:0005": 0.005} and {"UNDELIV": 0.02, "EXPIRED": 0.01}),
NO_RECEIPT_RATE, RECEIPT_DELAY_S (default 2), SEED (for repeatable runs), OUTAGE_FILE
(while that file exists the carrier cannot be reached: a link outage), LEDGER
(a file path: the simulated carrier's record of every submission, shared by every
process, so it can be asked about an attempt after a crash and so tests can count
what reached the "carrier"; without it the record lives in this process only).
"""

from __future__ import annotations

import functools
import json
import os
import random
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from app.gateways.base import GatewayUnavailable, Outbound, Receipt, SubmitResult
from app.supervise import ForkGate

DELIVERED, REFUSED, UNDELIVERED, SILENT = "delivered", "refused", "undelivered", "silent"
TEST_NUMBERS = {
    "+8613900000001": DELIVERED, "+14155550101": DELIVERED,
    "+8613900000002": REFUSED, "+14155550102": REFUSED,
    "+8613900000003": UNDELIVERED, "+14155550103": UNDELIVERED,
    "+8613900000004": SILENT, "+14155550104": SILENT,
}


class SimulatorGateway:
    name = "simulator"
    asks_again = False  # its lookup is exact: nothing it answers stays unknown

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        c = config or {}
        self.latency_s = float(c.get("SIMULATOR_LATENCY_MS", 0)) / 1000
        self.refuse_rates = _rates(c.get("SIMULATOR_REFUSE_RATES"))
        self.undelivered_rates = _rates(c.get("SIMULATOR_UNDELIVERED_RATES"))
        self.silent_rate = float(c.get("SIMULATOR_NO_RECEIPT_RATE", 0.0))
        self.receipt_delay_s = float(c.get("SIMULATOR_RECEIPT_DELAY_S", 2.0))
        self.random = random.Random(c.get("SIMULATOR_SEED"))
        self.ledger = Ledger(c.get("SIMULATOR_LEDGER") or None)
        self.outage_file = c.get("SIMULATOR_OUTAGE_FILE") or None

    def register_signature(self, region: str, content: str) -> bool:
        return True  # the simulator's carrier registers at once

    def _outcome(self, number: str) -> tuple[str, str]:
        """(outcome, carrier code)."""
        if number in TEST_NUMBERS:
            outcome = TEST_NUMBERS[number]
            return outcome, {REFUSED: "MK:0012", UNDELIVERED: "UNDELIV"}.get(outcome, "DELIVRD")
        roll = self.random.random()
        chances = [(REFUSED, code, rate) for code, rate in self.refuse_rates.items()]
        chances += [(UNDELIVERED, code, rate) for code, rate in self.undelivered_rates.items()]
        chances.append((SILENT, "", self.silent_rate))
        for outcome, code, rate in chances:
            if roll < rate:
                return outcome, code
            roll -= rate
        return DELIVERED, "DELIVRD"

    def _reachable(self) -> None:
        if self.outage_file and os.path.exists(self.outage_file):
            raise GatewayUnavailable("the simulated carrier is unreachable (outage file)")

    def submit(self, batch: list[Outbound]) -> list[SubmitResult]:
        self._reachable()
        if self.latency_s:
            time.sleep(self.latency_s)  # one round trip per batch, like a windowed SMSC
        decided = []
        for m in batch:
            outcome, code = self._outcome(m.phone_number)
            decided.append((m, uuid.uuid4().hex, outcome, code))
        fenced = self.ledger.record(decided)  # the carrier has them now
        return [self._result(m.message_id, gid, outcome, code) if m.message_id not in fenced
                else SubmitResult(m.message_id, False, None, "FailedOperation.GatewayRejected",
                                  "FENCED")
                for m, gid, outcome, code in decided]

    def _result(self, message_id: int, gateway_id: str, outcome: str,
                code: str) -> SubmitResult:
        if outcome == REFUSED:
            return SubmitResult(message_id, False, gateway_id,
                                "FailedOperation.GatewayRejected", code)
        receipt = None if outcome == SILENT else Receipt(
            delivered=outcome == DELIVERED, carrier_code=code, gateway_id=gateway_id)
        return SubmitResult(message_id, True, gateway_id, receipt=receipt,
                            receipt_after_s=self.receipt_delay_s)

    def lookup(self, batch: list[Outbound]) -> list[SubmitResult | None]:
        """What became of each message of an attempt; fences those never seen."""
        self._reachable()
        found = self.ledger.lookup([(m.message_id, m.attempt_id or "") for m in batch])
        return [self._result(m.message_id, *found[m.message_id]) if m.message_id in found
                else None for m in batch]


# The ledger's file (or its lock, kept in memory) is used by a worker's sweeper thread
# (lookups) and by the work horses the worker forks (submissions): a fork waits for a
# lookup in hand (app/supervise.py ForkGate), or the horse could inherit its lock.
_FORKS = ForkGate()
_T = TypeVar("_T")


def _gated(method: Callable[..., _T]) -> Callable[..., _T]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> _T:
        with _FORKS:
            return method(*args, **kwargs)
    return call


class Ledger:
    """The simulated carrier's memory: what it accepted, and attempts it was asked
    about and never saw (fenced: a late submit from them is refused)."""

    MEMORY_CAP = 200_000  # in-process record: recent submissions only

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.memory: OrderedDict[int, tuple[str, str, str]] = OrderedDict()
        self.fences: set[tuple[int, str]] = set()
        if path:
            with self._db() as db:
                db.execute("CREATE TABLE IF NOT EXISTS submission (message_id INTEGER, "
                           "attempt TEXT, gateway_id TEXT, outcome TEXT, code TEXT)")
                db.execute("CREATE INDEX IF NOT EXISTS ix_submission ON submission "
                           "(message_id)")
                db.execute("CREATE TABLE IF NOT EXISTS fence (message_id INTEGER, "
                           "attempt TEXT, PRIMARY KEY (message_id, attempt))")

    def _db(self) -> sqlite3.Connection:
        assert self.path
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @_gated
    def record(self, decided: list[tuple[Outbound, str, str, str]]) -> set[int]:
        """Store submissions; returns the message ids refused because fenced."""
        if not self.path:
            with self.lock:
                fenced = {m.message_id for m, *_ in decided
                          if (m.message_id, m.attempt_id or "") in self.fences}
                for m, gid, outcome, code in decided:
                    if m.message_id not in fenced:
                        self.memory[m.message_id] = (gid, outcome, code)
                while len(self.memory) > self.MEMORY_CAP:
                    self.memory.popitem(last=False)
            return fenced
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            pairs = [(m.message_id, m.attempt_id or "") for m, *_ in decided]
            fenced = {mid for (mid, att) in pairs if db.execute(
                "SELECT 1 FROM fence WHERE message_id = ? AND attempt = ?",
                (mid, att)).fetchone()} if any(a for _, a in pairs) else set()
            db.executemany("INSERT INTO submission VALUES (?, ?, ?, ?, ?)", [
                (m.message_id, m.attempt_id or "", gid, outcome, code)
                for m, gid, outcome, code in decided if m.message_id not in fenced])
            db.execute("COMMIT")
            return fenced
        finally:
            db.close()

    @_gated
    def lookup(self, pairs: list[tuple[int, str]]) -> dict[int, tuple[str, str, str]]:
        if not self.path:
            with self.lock:
                found = {mid: self.memory[mid] for mid, _ in pairs if mid in self.memory}
                self.fences.update(p for p in pairs if p[0] not in found)
            return found
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            found = {}
            for mid, attempt in pairs:
                row = db.execute("SELECT gateway_id, outcome, code FROM submission "
                                 "WHERE message_id = ? ORDER BY rowid LIMIT 1",
                                 (mid,)).fetchone()
                if row:
                    found[mid] = (row[0], row[1], row[2])
                else:
                    db.execute("INSERT OR IGNORE INTO fence VALUES (?, ?)", (mid, attempt))
            db.execute("COMMIT")
            return found
        finally:
            db.close()

    def counts(self) -> dict[int, int]:
        """Submissions per message id (tests count duplicates with it)."""
        if not self.path:
            return dict.fromkeys(self.memory, 1)
        db = self._db()
        try:
            return dict(db.execute("SELECT message_id, count(*) FROM submission "
                                   "GROUP BY message_id").fetchall())
        finally:
            db.close()


def _rates(value: Any) -> dict[str, float]:
    """A JSON object (or dict) of carrier code → share of messages."""
    if not value:
        return {}
    found = json.loads(value) if isinstance(value, str) else dict(value)
    if not all(isinstance(v, int | float) and 0 <= v <= 1 for v in found.values()):
        raise ValueError("simulator rates are shares from 0 to 1")
    return {str(k): float(v) for k, v in found.items()}
