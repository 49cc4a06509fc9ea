"""app/db.py batch_json: the JSON parameter of the hot path's batch statements."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from app.db import batch_json


def test_rows_read_back_as_the_standard_json_gives_them() -> None:
    at = datetime(2026, 12, 7, 9, 30, 1, 250, tzinfo=UTC)
    rows = [{"id": 1, "content": "您好 😀 \"q\" \\ \n", "at": at, "none": None, "ok": True,
             "zone": at.astimezone(timezone(timedelta(hours=8))), "whole": at.replace(
                 microsecond=0), "fee": 2}]
    text = batch_json(rows)
    assert json.loads(text) == json.loads(json.dumps(rows, default=datetime.isoformat))
    assert json.loads(text)[0]["zone"] == "2026-12-07T17:30:01.000250+08:00"


def test_what_orjson_refuses_is_written_as_before() -> None:
    rows = [{"content": "half \ud800 a pair", "at": datetime(2026, 1, 1, tzinfo=UTC)}]
    assert batch_json(rows) == json.dumps(rows, default=datetime.isoformat)
