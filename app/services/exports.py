"""CSV downloads, built whole before anything is sent: a failure midway is a clean
error page, never a truncated file that looks complete, and no database transaction
stays open while a client downloads. In memory up to 4 MB, then on disk."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Sequence
from typing import IO, Any

from app.sms.csvcells import neutralise


def spooled_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> IO[bytes]:
    """UTF-8 with a BOM (Excel reads it as UTF-8); every cell neutralised against
    spreadsheet formulas. The caller sends it and closes it."""
    out = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024)  # noqa: SIM115 - returned
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow([neutralise(h) for h in header])
    for row in rows:
        writer.writerow([neutralise(c) for c in row])
    text.flush()
    text.detach()
    out.seek(0)
    return out  # type: ignore[return-value]
