"""The rollup deltas of a batch, counted per distinct key (app/services/rollups.py
new_tally, moved_tally), are those of counting every message by itself; so are the
bulk tasks' figures counted beside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.services import rollups

_AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
_STATUS = ["accepted", "submitting", "submitted", "unknown", "delivered", "failed", "rejected",
           "no_receipt"]


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": draw(st.integers(1, 10**6)),
        "created_at": _AT + timedelta(minutes=draw(st.sampled_from([0, 1, 45, 90]))),
        "account_id": draw(st.sampled_from([1, 2])),
        "app_id": draw(st.sampled_from([1, 2, 3])),
        "region": draw(st.sampled_from(["mainland", "international"])),
        "iso_code": draw(st.sampled_from([None, "", "CN", "US"])),
        "signature_id": draw(st.sampled_from([None, 1, 2])),
        "template_id": draw(st.sampled_from([None, 4])),
        "sms_type": draw(st.sampled_from([None, "verification", "notification", "marketing"])),
        "content": draw(st.sampled_from([None, "", "Your code is 1234", "Order shipped",
                                         "验证码 5678"])),
        "fee": draw(st.sampled_from([None, 0, 1, 3])),
        "status": draw(st.sampled_from(_STATUS)),
        "receipt_at": draw(st.sampled_from([None, _AT])),
        "error_code": draw(st.sampled_from([None, "", "FailedOperation.Undelivered", "E" * 70])),
        "carrier_code": draw(st.sampled_from([None, "", "DELIVRD", "UNDELIV", "C" * 70])),
        "task_id": draw(st.sampled_from([None, 7, 8])),
    }


def _deltas(tally: rollups.Tally) -> tuple[dict[Any, list[int]], dict[Any, int]]:
    return ({k: v for k, v in tally.deltas.items() if v != [0, 0]},
            {k: n for k, n in tally.tasks.items() if n})


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(messages(), max_size=40), as_objects=st.booleans())
def test_new_messages_are_counted_as_one_by_one(rows: list[dict[str, Any]],
                                                as_objects: bool) -> None:
    expected = rollups.Tally()
    for m in rows:
        expected.add_message(SimpleNamespace(**m))
    given_rows = [SimpleNamespace(**m) for m in rows] if as_objects else rows
    assert _deltas(rollups.new_tally(given_rows)) == _deltas(expected)


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(messages(), messages()), max_size=40))
def test_moves_are_counted_as_one_by_one(pairs: list[tuple[dict[str, Any],
                                                           dict[str, Any]]]) -> None:
    before: dict[int, Any] = {}
    after = []
    expected = rollups.Tally()
    for n, (old, new) in enumerate(pairs):
        if n % 5 == 4:  # a changed row the snapshot did not see: not counted
            after.append(SimpleNamespace(**{**new, "id": -n}))
            continue
        before[n] = SimpleNamespace(**{**old, "id": n})
        after.append(SimpleNamespace(**{**new, "id": n}))
        expected.add_message(before[n], -1)
        expected.add_message(SimpleNamespace(**{**old, **{k: new[k] for k in (
            "status", "receipt_at", "error_code", "carrier_code")}}), 1)
    assert _deltas(rollups.moved_tally(before, after)) == _deltas(expected)
