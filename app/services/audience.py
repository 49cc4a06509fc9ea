"""The customer pool and customer groups (SPEC.md §4).

A group holds numbers for one SMS type. Adding numbers is all or nothing: a typed
entry with a bad line writes nothing and lists every bad line with its reason.
Duplicates (within the entry, or already in the group) are merged and counted.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import delete, func, select, update

from app.db import utcnow
from app.models import CustomerGroup, GroupMember, MuteEntry, SendTask, Unsubscribe
from app.services import audit, bulk, tasks
from app.services.context import Ctx
from app.services.errors import Conflict, NotFound, ValidationError, invalid
from app.services.unique import taken
from app.sms import memberfile, numbers, taskfile, templating

NAME_MAX = 40
TYPED_MAX_LINES = 100  # numbers per typed entry (fixed)
MAX_GROUPS = 1000  # per account
PAGE_SIZE = 50
INSERT_CHUNK = 5000  # rows per INSERT statement on a file import


@dataclass
class AddResult:
    group: CustomerGroup
    added: int = 0
    merged: int = 0  # duplicates within the entry or already in the group


@dataclass
class LineError:
    line: int
    text: str
    reason: str


class BadLines(ValidationError):
    """Some lines cannot be added; nothing was. `lines` holds the first
    SHOWN_ERRORS of `count`."""

    def __init__(self, lines: list[LineError], count: int | None = None,
                 field: str = "numbers") -> None:
        count = len(lines) if count is None else count
        what = "line" if field == "numbers" else "row"
        super().__init__({field: f"{count:,} {what}{'s' if count != 1 else ''} cannot be "
                                 "added; nothing was imported. Fix them and try again."})
        self.lines = lines
        self.count = count


@dataclass
class Member:
    id: int
    phone_number: str
    created_at: object
    muted: bool
    unsubscribed: bool


def _check_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise invalid("name", "Give the group a name.")
    if len(name) > NAME_MAX:
        raise invalid("name", f"At most {NAME_MAX} characters.")
    return name


def _check_type(sms_type: str) -> str:
    if sms_type not in templating.SMS_TYPES:
        raise invalid("sms_type", "Choose a message type.")
    return sms_type


def _name_in_use() -> ValidationError:
    return invalid("name", "A group with this name exists already.")


def _name_taken(ctx: Ctx, name: str, except_id: int | None = None) -> bool:
    q = select(CustomerGroup.id).where(CustomerGroup.account_id == ctx.actor.account_id,
                                       func.lower(CustomerGroup.name) == name.lower())
    if except_id is not None:
        q = q.where(CustomerGroup.id != except_id)
    return ctx.db.scalar(q.limit(1)) is not None


def groups(ctx: Ctx, query: str = "", page: int = 1,
           page_size: int = PAGE_SIZE) -> tuple[list[CustomerGroup], int]:
    """A page of the account's groups (newest first) and how many match in all."""
    ctx.actor.require("DescribeCustomerGroup")
    where = [CustomerGroup.account_id == ctx.actor.account_id]
    if query.strip():
        like = query.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(CustomerGroup.name.ilike(f"%{like}%", escape="\\"))
    total = ctx.db.scalar(select(func.count()).select_from(CustomerGroup).where(*where)) or 0
    rows = ctx.db.scalars(select(CustomerGroup).where(*where).order_by(CustomerGroup.id.desc())
                          .limit(page_size).offset((max(page, 1) - 1) * page_size)).all()
    return list(rows), total


def get_group(ctx: Ctx, group_id: int | str) -> CustomerGroup:
    ctx.actor.require("DescribeCustomerGroup")
    return _group(ctx, group_id)


def _group(ctx: Ctx, group_id: int | str, *, lock: bool = False) -> CustomerGroup:
    try:
        gid = int(group_id)
    except (TypeError, ValueError):
        raise NotFound("No such group.") from None
    q = select(CustomerGroup).where(CustomerGroup.id == gid,
                                    CustomerGroup.account_id == ctx.actor.account_id)
    group = ctx.db.scalar(q.with_for_update() if lock else q)
    if group is None:
        raise NotFound("No such group.")
    return group


def create_group(ctx: Ctx, *, name: str, sms_type: str) -> CustomerGroup:
    ctx.actor.require("CreateCustomerGroup")
    errors: dict[str, str] = {}
    for check, value in ((_check_name, name), (_check_type, sms_type)):
        try:
            check(value)
        except ValidationError as exc:
            errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)
    name = _check_name(name)
    if _name_taken(ctx, name):
        raise _name_in_use()
    count = ctx.db.scalar(select(func.count()).select_from(CustomerGroup).where(
        CustomerGroup.account_id == ctx.actor.account_id)) or 0
    if count >= MAX_GROUPS:
        raise Conflict(f"An account holds at most {MAX_GROUPS:,} groups.")
    group = CustomerGroup(account_id=ctx.actor.account_id, name=name, sms_type=sms_type,
                          member_count=0, created_by=ctx.actor.label)
    with taken(ctx.db, _name_in_use()):
        ctx.db.add(group)
    audit.record(ctx, "CreateCustomerGroup", "customer_group", group.id, None,
                 {"name": name, "sms_type": sms_type})
    return group


def rename_group(ctx: Ctx, group_id: int | str, name: str) -> CustomerGroup:
    ctx.actor.require("ModifyCustomerGroup")
    group = _group(ctx, group_id)
    name = _check_name(name)
    if _name_taken(ctx, name, except_id=group.id):
        raise _name_in_use()
    audit.record_changes(ctx, "ModifyCustomerGroup", "customer_group", group.id,
                         {"name": group.name}, {"name": name})
    with taken(ctx.db, _name_in_use()):
        group.name = name
    return group


def delete_group(ctx: Ctx, group_id: int | str, *, confirm_name: str | None) -> None:
    """Delete a group and its numbers. People type the group's name to confirm
    (`confirm_name`); programs (the API) pass None."""
    ctx.actor.require("DeleteCustomerGroup")
    group = _group(ctx, group_id, lock=True)
    if confirm_name is not None and " ".join(confirm_name.split()) != group.name:
        raise invalid("confirm_name", "Type the group's name exactly to delete it.")
    audit.record(ctx, "DeleteCustomerGroup", "customer_group", group.id,
                 {"name": group.name, "numbers": group.member_count}, None)
    ctx.db.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
    ctx.db.delete(group)
    ctx.db.flush()


def _prefix_filter(query: str) -> str | None:
    """A number prefix as typed ('138', '+86138', '+1 415'): digits with an optional +."""
    raw = "".join(ch for ch in query if ch.isdigit() or ch == "+")
    if not raw:
        return None
    if not raw.startswith("+"):
        raw = "+86" + raw if raw.startswith("1") else "+" + raw
    return raw


def members(ctx: Ctx, group_id: int | str, query: str = "", page: int = 1,
            page_size: int = PAGE_SIZE) -> tuple[CustomerGroup, list[Member], int]:
    """A page of a group's numbers, each marked muted / unsubscribed for the group's
    SMS type (under any signature), and how many match."""
    group = get_group(ctx, group_id)
    where = [GroupMember.group_id == group.id]
    prefix = _prefix_filter(query)
    if query.strip() and prefix is None:
        raise invalid("q", "Search by the start of a number: digits, with + for a country code.")
    if prefix:
        where.append(GroupMember.phone_number.startswith(prefix, autoescape=True))
        total = ctx.db.scalar(select(func.count()).select_from(GroupMember).where(*where)) or 0
    else:
        total = group.member_count
    rows = ctx.db.execute(select(GroupMember.id, GroupMember.phone_number, GroupMember.created_at)
                          .where(*where).order_by(GroupMember.id.desc())
                          .limit(page_size).offset((max(page, 1) - 1) * page_size)).all()
    phones = [r.phone_number for r in rows]
    muted = set(ctx.db.scalars(select(MuteEntry.phone_number).where(
        MuteEntry.account_id == ctx.actor.account_id, MuteEntry.phone_number.in_(phones),
        (MuteEntry.sms_type.is_(None)) | (MuteEntry.sms_type == group.sms_type))))
    gone = set(ctx.db.scalars(select(Unsubscribe.phone_number).where(
        Unsubscribe.account_id == ctx.actor.account_id, Unsubscribe.phone_number.in_(phones),
        Unsubscribe.sms_type == group.sms_type)))
    return group, [Member(r.id, r.phone_number, r.created_at, r.phone_number in muted,
                          r.phone_number in gone) for r in rows], total


def all_numbers(ctx: Ctx, group_id: int | str
                ) -> tuple[CustomerGroup, Iterable[tuple[str, list[str] | None]]]:
    """Every number of a group in the order added, streamed (export, send to a group)."""
    group = get_group(ctx, group_id)
    rows = ctx.db.execute(select(GroupMember.phone_number, GroupMember.attributes)
                          .where(GroupMember.group_id == group.id)
                          .order_by(GroupMember.id).execution_options(yield_per=5000))
    return group, ((r.phone_number, r.attributes) for r in rows)


def export_table(ctx: Ctx, group_id: int | str
                 ) -> tuple[CustomerGroup, list[str], Iterable[list[str]]]:
    """The group as a file that imports back the same: the number, then each extra
    column it was imported with as a column of its own (shorter rows padded). Two
    streamed passes: the first finds how many columns there are."""
    group, first = all_numbers(ctx, group_id)
    width = max((len(attrs or []) for _phone, attrs in first), default=0)
    _group, rows = all_numbers(ctx, group_id)
    header = ["phone_number", *(f"column_{n}" for n in range(1, width + 1))]
    return group, header, ([phone, *(attrs or []), *[""] * (width - len(attrs or []))]
                           for phone, attrs in rows)


def remove_numbers(ctx: Ctx, group_id: int | str, ids: Sequence[int]) -> int:
    ctx.actor.require("DeleteCustomerNumbers")
    group = _group(ctx, group_id, lock=True)
    if not ids:
        return 0
    gone = ctx.db.scalars(delete(GroupMember).where(
        GroupMember.group_id == group.id, GroupMember.id.in_(list(ids)))
        .returning(GroupMember.id)).all()
    removed = len(gone)
    if removed:
        ctx.db.execute(update(CustomerGroup).where(CustomerGroup.id == group.id)
                       .values(member_count=CustomerGroup.member_count - removed))
        audit.record(ctx, "DeleteCustomerNumbers", "customer_group", group.id,
                     {"numbers": removed}, None)
        ctx.db.flush()
        ctx.db.refresh(group)
    return removed


def _target(ctx: Ctx, group_id: int | str | None, new_name: str, sms_type: str) -> CustomerGroup:
    if group_id not in (None, ""):
        assert group_id is not None
        group = _group(ctx, group_id, lock=True)
        if sms_type and sms_type != group.sms_type:
            raise invalid("sms_type", f"This group is for {templating.SMS_TYPES[group.sms_type]}"
                                      " messages.")
        return group
    return create_group(ctx, name=new_name, sms_type=sms_type)


def add_typed(ctx: Ctx, *, text: str, group_id: int | str | None = None, new_name: str = "",
              sms_type: str = "") -> AddResult:
    """Numbers typed one per line into an existing group, or a new one created here.
    Mainland numbers as plain 11 digits (or +86…), others with their country code."""
    ctx.actor.require("AddCustomerNumbers")
    lines = [(i, line.strip()) for i, line in enumerate((text or "").splitlines(), 1)
             if line.strip()]
    if not lines:
        raise invalid("numbers", "Type at least one number, one per line.")
    if len(lines) > TYPED_MAX_LINES:
        raise invalid("numbers", f"At most {TYPED_MAX_LINES} numbers per entry; import a file "
                                 "for more.")
    parsed: list[tuple[int, str]] = []
    bad: list[LineError] = []
    for i, line in lines:
        try:
            parsed.append((i, numbers.parse_any(line)))
        except numbers.NumberError as exc:
            bad.append(LineError(i, line[:40], str(exc)))
    if bad:
        raise BadLines(bad)
    group = _target(ctx, group_id, new_name, sms_type)
    return _insert(ctx, group, ((n, None) for _, n in parsed))


def add_rows(ctx: Ctx, group: CustomerGroup,
             rows: Iterable[tuple[str, list[str] | None]]) -> AddResult:
    """Bulk-add already validated E.164 numbers (a file import) to a group the caller
    got from `target_for_import`, in the caller's transaction."""
    ctx.actor.require("AddCustomerNumbers")
    return _insert(ctx, group, rows)


def target_for_import(ctx: Ctx, *, group_id: int | str | None, new_name: str,
                      sms_type: str) -> CustomerGroup:
    ctx.actor.require("AddCustomerNumbers")
    return _target(ctx, group_id, new_name, sms_type)


# A file's numbers go through a temporary table on PostgreSQL (COPY cannot skip
# conflicts); rows keep the file's order, so the first of two equal numbers is kept.
_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS import_member (seq bigint, phone_number "
          "varchar(20), attributes json) ON COMMIT DROP")
_STAGE_COPY = "COPY import_member (seq, phone_number, attributes) FROM STDIN"
_STAGED_INSERT = ("INSERT INTO group_member (group_id, phone_number, attributes, created_at) "
                  "SELECT %(group)s, phone_number, attributes, %(now)s FROM import_member "
                  "ORDER BY seq ON CONFLICT (group_id, phone_number) DO NOTHING")
_INSERT = ("INSERT INTO group_member (group_id, phone_number, attributes, created_at) "
           "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, phone_number) DO NOTHING")


def _insert(ctx: Ctx, group: CustomerGroup,
            rows: Iterable[tuple[str, list[str] | None]]) -> AddResult:
    """INSERT … ON CONFLICT DO NOTHING in bulk (app/services/bulk.py); the kept count is
    recounted once at the end under the group's row lock, so concurrent imports never
    drift it."""
    ctx.db.flush()
    conn = ctx.db.connection()
    staged = conn.dialect.name == "postgresql"
    now = bulk.bound(conn, GroupMember.__table__.c.created_at, utcnow())
    if staged:
        conn.exec_driver_sql(_STAGE)
        conn.exec_driver_sql("TRUNCATE import_member")
    seen = 0
    chunk: list[Any] = []
    for phone, attrs in rows:
        seen += 1
        chunk.append(f"{seen}\t{phone}\t{bulk.copy_field(json.dumps(attrs))}\n" if staged
                     else (group.id, phone, json.dumps(attrs), now))
        if len(chunk) >= INSERT_CHUNK:
            _write(conn, staged, chunk)
            chunk = []
    _write(conn, staged, chunk)
    if staged:
        conn.exec_driver_sql(_STAGED_INSERT, {"group": group.id, "now": now})
    before = group.member_count
    count = ctx.db.scalar(select(func.count()).select_from(GroupMember).where(
        GroupMember.group_id == group.id)) or 0
    ctx.db.execute(update(CustomerGroup).where(CustomerGroup.id == group.id)
                   .values(member_count=count))
    ctx.db.flush()
    ctx.db.refresh(group)
    added = count - before
    audit.record(ctx, "AddCustomerNumbers", "customer_group", group.id, None,
                 {"added": added, "merged": seen - added})
    return AddResult(group, added=added, merged=seen - added)


def _write(conn: Any, staged: bool, chunk: list[Any]) -> None:
    if chunk and staged:
        bulk.copy(conn, _STAGE_COPY, chunk)
    elif chunk:
        bulk.executemany(conn, _INSERT, chunk)


def import_file(ctx: Ctx, f: IO[bytes], filename: str, *, group_id: int | str | None = None,
                new_name: str = "", sms_type: str = "",
                max_bytes: int = taskfile.MAX_BYTES) -> AddResult:
    """A CSV/XLSX of numbers (extra columns kept as each number's attributes) into an
    existing group or a new one. All or nothing: the file is read twice, streaming,
    first to find every bad row (the first SHOWN_ERRORS are reported) and only then to
    insert, so a bad row or a bad file writes nothing. (No savepoint: on SQLite,
    pysqlite may make one the outermost transaction, whose release commits.)"""
    ctx.actor.require("AddCustomerNumbers")
    bad: list[LineError] = []
    bad_count = 0
    try:
        for item in memberfile.members(f, filename, max_bytes=max_bytes):
            if isinstance(item, taskfile.RowError):
                bad_count += 1
                if len(bad) < taskfile.SHOWN_ERRORS:
                    bad.append(LineError(item.row, item.column, item.reason))
    except taskfile.FileError as exc:
        raise invalid("file", str(exc)) from None
    if bad_count:
        raise BadLines(bad, bad_count, field="file")
    group = _target(ctx, group_id, new_name, sms_type)
    f.seek(0)
    return _insert(ctx, group, ((m.phone, m.attributes)
                                for m in memberfile.members(f, filename, max_bytes=max_bytes)
                                if isinstance(m, memberfile.Member)))


def send_to_group(ctx: Ctx, draft: tasks.Draft, group_id: int | str, *,
                  params: list[str] | None) -> tuple[SendTask, tasks.Summary]:
    """A bulk task whose recipients are the group's numbers: with `params` the same
    template variables for everyone, else each number's imported attributes. The
    group becomes a task file, so the task validates, confirms and sends exactly like
    an uploaded one (numbers of the other region are skipped rows, with the reason)."""
    group, rows = all_numbers(ctx, group_id)
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+b")  # noqa: SIM115
    text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
    out = csv.writer(text)
    out.writerow(["phone"])
    for phone, attrs in rows:
        out.writerow([phone, *(params if params is not None else (attrs or []))])
    text.flush()
    text.detach()
    spool.seek(0)
    if not draft.name:
        draft = dataclasses.replace(draft, name=f"Group: {group.name}"[:100])
    with spool:
        return tasks.create_task(ctx, draft, spool, f"group-{group.id}.csv")
