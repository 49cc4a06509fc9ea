"""A recipient workbook's sheet read by python-calamine, in a process of its own.

python-calamine (Rust) reads a sheet about ten times faster than openpyxl, but it first
builds the sheet as a dense grid, and when that grid cannot be allocated it aborts its
process: nothing to catch, and a 5 KB file can place one cell at Excel's last row and
column. So it runs in a child process whose address space and CPU time are capped
(`SheetReader`). The child declines, before it writes any row, every sheet it cannot
read exactly as openpyxl's path (app/sms/taskfile.py) reads it: a grid past the cap or
past Excel's last row, a value other than text, a number or a boolean (dates come out
typed differently), a number of 10^15 or more (openpyxl keeps the integer its XML
holds; calamine a float), or anything calamine refuses. The caller checks the sheet's
XML for what the child cannot see (error cells, which calamine reads as empty; `_xHHHH_`
escapes, which only calamine decodes) and reads every declined sheet with openpyxl.
Known exceptions, in files no common writer produces: calamine reads rows listed out of
order, and sheets in the Strict namespace (or none), where openpyxl silently reads none.

What the child writes: one byte, `+`, once it has decided to read the sheet, then the
sheet as CSV from row 1 and column A, each cell as `cell_text` renders it, trailing
empty cells left out. It is run as a script (`python -P workbook.py SHEET`, the file on
standard input) and imports nothing of `app`.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, time
from types import TracebackType
from typing import IO, Any

# The child's cap. Measured peaks for 1M rows x 3 columns: 244 MB as numbers, 325 MB as
# text (shared strings); a grid of much over 10M cells of text is openpyxl's to read.
ADDRESS_SPACE = 1 << 30
CPU_SECONDS = 30  # a million rows take ~4 s; a file that spins goes to openpyxl
# Wall clock, for a child that hangs without using CPU: until it decides (it reads the
# sheet alone), and then while the caller reads the rows at its own pace (a task's create
# inserts each batch as it comes).
DEADLINE_S, STREAM_DEADLINE_S = 60, 1800
PIPE_BYTES = 1 << 20
BLOCK_CELLS = 1 << 15  # cells converted at a time
# Grids the child leaves to openpyxl before converting a cell: a task or group file has
# a phone and a few dozen columns at most; a stray far-off cell makes a sparse giant.
MOST_COLUMNS, MOST_GRID = 1024, 20_000_000
EXACT = 1e15  # whole floats below this are shown as integers (Excel keeps them exactly)
GO = b"+"
_PLAIN = {str, float, bool, int}


def cell_text(value: Any) -> str:
    """A cell as the file rules read it, for openpyxl's values and calamine's alike:
    numbers as Excel shows them (13800138000, not 13800138000.0; a fraction to Excel's
    15 significant digits: 99*0.9 is 89.1, not 89.10000000000001), a date without the
    midnight that carries it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < EXACT:
            return str(int(value))
        return format(value, ".15g")
    if isinstance(value, datetime) and value.time() == time() and value.tzinfo is None:
        return value.date().isoformat()
    return str(value)


# --- the parent's side -------------------------------------------------------------------

class SheetReader:
    """The child reading `sheet` of the workbook in `f`: `rows()` is the sheet as CSV text,
    or None when the child declined it (its grid is past `most_rows` or `most_cells`, or
    see the module). Always used with `with` (the child is killed on the way out,
    whatever happened)."""

    def __init__(self, f: IO[bytes], sheet: str, *, most_rows: int, most_cells: int) -> None:
        f.seek(0)
        self.proc: subprocess.Popen[bytes] | None = None
        self.watchdog: threading.Timer | None = None
        if not sys.executable:  # an embedded interpreter: no child to start
            return
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - a list, no shell; the name is data
                [sys.executable, "-P", os.path.abspath(__file__), sheet, str(most_rows),
                 str(most_cells)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                # A Rust panic that symbolises its backtrace when memory has run out
                # deadlocks in the out-of-memory hook: no CPU used, never ends.
                env={**os.environ, "RUST_BACKTRACE": "0", "RUST_LIB_BACKTRACE": "0"})
            self._watch(DEADLINE_S)
            assert self.proc.stdin is not None and self.proc.stdout is not None
            _widen(self.proc.stdout)
            with self.proc.stdin:
                while chunk := f.read(1 << 20):
                    self.proc.stdin.write(chunk)
        except OSError:  # no interpreter to start, or a child already gone: declined
            self.close()
        except BaseException:
            self.close()
            raise
        finally:
            f.seek(0)

    def _watch(self, seconds: float) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.proc is not None:
            self.watchdog = threading.Timer(seconds, self.proc.kill)
            self.watchdog.daemon = True
            self.watchdog.start()

    def rows(self) -> io.TextIOWrapper | None:
        """Waits for the child's decision (it reads the whole sheet first). None also
        when the child was gone before it had the whole file (closed: a broken pipe)."""
        out = self.proc.stdout if self.proc is not None else None
        if out is None or out.closed or out.read(1) != GO:
            self.close()
            return None
        self._watch(STREAM_DEADLINE_S)
        return io.TextIOWrapper(out, encoding="utf-8", newline="")

    def finished(self) -> bool:
        """Whether the child wrote the whole sheet (call after reading to the end)."""
        return self.proc is not None and self.proc.wait() == 0

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def __enter__(self) -> SheetReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _widen(pipe: IO[bytes]) -> None:
    """A pipe of 1 MB where Linux allows it (the default 64 KB makes the two processes
    take turns several times per million rows' worth of text)."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # another system, or over /proc/sys/fs/pipe-max-size: the default does


# --- the child's side --------------------------------------------------------------------

def _declines(sheet: Any, most_rows: int, most_cells: int) -> bool:
    """Whether this grid is one the openpyxl path must read instead (see the module)."""
    if sheet.end is None:
        return True  # nothing in it: openpyxl's path says so
    rows, columns = sheet.end[0] + 1, sheet.end[1] + 1
    if rows > most_rows or columns > MOST_COLUMNS or rows * columns > min(most_cells,
                                                                          MOST_GRID):
        return True
    values = itertools.chain.from_iterable
    if not set(map(type, values(sheet.iter_rows()))) <= _PLAIN:
        return True
    return max(map(abs, filter(float.__instancecheck__, values(sheet.iter_rows()))),
               default=0.0) >= EXACT


def _column(values: tuple[Any, ...]) -> Any:
    """A column of a block of rows as text: whole numbers (the usual phone and code
    columns) converted at C speed, other values one at a time by `cell_text`."""
    kinds = set(map(type, values))
    if kinds == {str}:
        return values
    if kinds == {float} and all(map(float.is_integer, values)) and \
            max(map(abs, values)) < EXACT:
        return list(map(str, map(int, values)))
    return [v if type(v) is str else cell_text(v) for v in values]


def _lines(rows: Any, pad: int, width: int) -> Iterator[Any]:
    """The sheet's rows as lists of text, `pad` empty cells first, trailing empty cells
    left out; converted a block of BLOCK_CELLS cells at a time, column by column."""
    per_block = max(1, BLOCK_CELLS // max(width, 1))
    while block := list(itertools.islice(rows, per_block)):
        columns = [_column(c) for c in zip(*block, strict=True)]
        if pad:
            columns[:0] = [("",) * len(block)] * pad
        lines = zip(*columns, strict=True)
        if columns and "" in columns[-1]:
            for line in lines:
                cells = list(line)
                while cells and not cells[-1]:
                    cells.pop()
                yield cells
        else:
            yield from lines


def main(sheet_name: str, most_rows: int, most_cells: int) -> int:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort leaves no core file behind
    data = sys.stdin.buffer.read()
    try:
        from python_calamine import CalamineWorkbook, SheetTypeEnum

        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        del data
        # openpyxl's sheet names went through XML's attribute normalisation (a tab or a
        # line break is a space); calamine's did not. Exactly one worksheet must match.
        found = [n for n, meta in enumerate(book.sheets_metadata)
                 if re.sub(r"[\t\n\r]", " ", meta.name) == sheet_name]
        if len(found) != 1 or book.sheets_metadata[found[0]].typ != SheetTypeEnum.WorkSheet:
            return 3
        sheet = book.get_sheet_by_index(found[0])
        if _declines(sheet, most_rows, most_cells):
            return 3
    except Exception:  # whatever calamine refuses, openpyxl's path judges
        return 3
    out = sys.stdout.buffer
    out.write(GO)
    out.flush()
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    # Rows start at row 1; columns at the first one holding a cell: pad them to column A.
    # CRLF: Python 3.11's writer quotes a field holding \r or \n only if that character
    # is in the line terminator, and the reader splits lines at either.
    start, end = sheet.start or (0, 0), sheet.end or (0, 0)
    csv.writer(text, lineterminator="\r\n").writerows(
        _lines(sheet.iter_rows(), start[1], end[1] + 1))
    text.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
