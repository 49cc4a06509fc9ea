"""`smsops task validate|create|confirm|show|stop|cancel`: bulk send tasks for operators and
scripts, through the same service and policies as the web and Slack."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app import migrate
from app.models import Account, User
from app.queue import enqueue_deferred
from app.services import tasks
from app.services.accounts import actor_for, ensure_account, system_actor
from app.services.context import Ctx, Settings
from app.services.errors import ServiceError

T = TypeVar("T")
AS_HELP = "Act as this user (email); default: the root operator."


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _as(email: str | None, work: Callable[[Ctx], T]) -> T:
    """Run `work` as the named user (or the operator) in one unit of work; deferred
    jobs start after the commit. Service errors become one line and exit code 1."""
    app = current_app
    migrate.upgrade(app.config["DATABASE_URL"])
    try:
        with app.extensions["db"].unit_of_work() as session:
            if email:
                user = session.scalar(select(User).where(User.email == email.strip().lower()))
                if user is None or not user.active:
                    _fail(f"No active user {email}.")
                actor = actor_for(user)
            else:
                actor = system_actor(ensure_account(session))
            ctx = Ctx(session, actor, Settings.from_config(app.config),
                      gateway=app.extensions["gateway"])
            result = work(ctx)
    except ServiceError as exc:
        _fail(exc.message)
    enqueue_deferred(app.extensions["redis"], ctx.deferred)
    return result


def _max_bytes() -> int:
    return int(current_app.config.get("TASK_MAX_UPLOAD_MB", 30)) * 1024 * 1024


@click.group("task", cls=AppGroup)  # its commands run inside the app context
def task_group() -> None:
    """Bulk send tasks."""


@task_group.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--app", "sdk_app_id", required=True, help="SDK AppID.")
@click.option("--template", "template_id", required=True, type=int)
@click.option("--sign", default=None, help="Signature text.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
def task_validate(file: Path, sdk_app_id: str, template_id: int, sign: str | None,
                  as_user: str | None, as_json: bool) -> None:
    """Validate FILE against a template without creating anything."""
    draft = tasks.Draft(sdk_app_id, template_id, sign_name=sign)

    def work(ctx: Ctx) -> tasks.Summary:
        with file.open("rb") as f:
            return tasks.validate_file(ctx, draft, f, file.name, max_bytes=_max_bytes())

    summary = _as(as_user, work)
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
        return
    click.echo(f"{summary.rows:,} row(s): {summary.valid:,} valid, {summary.errors:,} with "
               f"errors; {summary.billed_items:,} billed item(s); {summary.seconds:.2f} s")
    for e in summary.first_errors[:20]:
        click.echo(f"  row {e.row} {e.column or '-'}: {e.reason}")


def _at(raw: str | None, ctx: Ctx) -> datetime | None:
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        _fail(f"--at: not an ISO date and time: {raw!r} (e.g. 2026-12-01T09:00).")
    if when.tzinfo is None:  # the account's zone, as on the web
        account = ctx.db.get(Account, ctx.actor.account_id)
        assert account is not None
        when = when.replace(tzinfo=ZoneInfo(account.timezone))
    return when


@task_group.command("create")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--app", "sdk_app_id", required=True, help="SDK AppID.")
@click.option("--template", "template_id", required=True, type=int)
@click.option("--sign", default=None, help="Signature text.")
@click.option("--name", default="")
@click.option("--at", "at", default=None, help="Send at (ISO 8601; no zone: the account's).")
@click.option("--rate", type=click.IntRange(1, 100_000), default=None,
              help="At most N messages per second.")
@click.option("--confirm", "confirm", is_flag=True, help="Confirm it at once.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
def task_create(file: Path, sdk_app_id: str, template_id: int, sign: str | None, name: str,
                at: str | None, rate: int | None, confirm: bool, as_user: str | None,
                as_json: bool) -> None:
    """Create a task from FILE; prints its id and summary (--confirm also confirms)."""

    def work(ctx: Ctx) -> dict[str, Any]:
        draft = tasks.Draft(sdk_app_id, template_id, name=name, sign_name=sign,
                            send_at=_at(at, ctx), rate_limit=rate)
        with file.open("rb") as f:
            task, summary = tasks.create_task(ctx, draft, f, file.name, max_bytes=_max_bytes())
        made = {"id": task.id, "status": task.status, **summary.as_dict()}
        if confirm:  # what the confirm step shows, said before it sends
            made["preflight"] = _preflight(ctx, task.id)
            tasks.confirm(ctx, task.id, acknowledged=True)
            made["status"] = task.status
        return made

    made = _as(as_user, work)
    if as_json:
        click.echo(json.dumps(made))
        return
    if "preflight" in made:
        _echo_preflight(made["preflight"])
    click.echo(f"Task {made['id']} ({made['status'].replace('_', ' ')}): {made['rows']:,} "
               f"row(s), {made['valid']:,} valid, {made['errors']:,} with errors, "
               f"{made['billed_items']:,} billed item(s).")


def _preflight(ctx: Ctx, task_id: int) -> dict[str, Any]:
    """The confirm step's figures (the web's): what confirming would send and refuse."""
    from app.services.limits import Limiter
    from app.sms import errors

    pre = tasks.preflight(ctx, Limiter(current_app.extensions["redis"]), task_id)
    return {"valid": pre.valid, "skipped": pre.skipped, "billed_items": pre.billed_items,
            "cost_cents": pre.cost_cents, "unpriced": list(pre.unpriced),
            "cost_text": pre.cost_text,
            "refusals": [{"code": code, "recipients": n,
                          "reason": errors.describe(code).reason}
                         for code, n in pre.refusals.items()],
            "notes": pre.notes, "finish_estimate": pre.finish_estimate}


def _echo_preflight(pre: dict[str, Any]) -> None:
    click.echo(f"Confirm step: {pre['valid']:,} recipient(s), {pre['skipped']:,} row(s) "
               f"skipped, {pre['billed_items']:,} billed item(s), estimated cost "
               f"{pre['cost_text']}.")
    for r in pre["refusals"]:
        click.echo(f"  If sent now, {r['recipients']:,} refused: {r['code']} ({r['reason']})")
    for line in [*pre["notes"], *([pre["finish_estimate"]] if pre["finish_estimate"] else [])]:
        click.echo(f"  {line}")


@task_group.command("confirm")
@click.argument("task_id", type=int)
@click.option("--yes", is_flag=True, help="Confirm without asking (scripts).")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
def task_confirm(task_id: int, yes: bool, as_user: str | None, as_json: bool) -> None:
    """Show what confirming a task would do (the web's confirm step), then confirm it:
    with --yes, or when answered yes at the prompt. Without either, nothing is sent."""
    pre = _as(as_user, lambda ctx: _preflight(ctx, task_id))
    if as_json and not yes:
        click.echo(json.dumps({"id": task_id, "confirmed": False, "preflight": pre}))
        return
    if not as_json:
        _echo_preflight(pre)
    if not yes and not click.confirm(f"Send {pre['valid']:,} message(s)?", default=False):
        _fail("Not confirmed: nothing was sent.")
    shown = _as(as_user, lambda ctx: tasks.confirm(ctx, task_id, acknowledged=True).status)
    if as_json:
        click.echo(json.dumps({"id": task_id, "confirmed": True, "status": shown,
                               "preflight": pre}))
        return
    click.echo(f"Task {task_id} confirmed ({shown.replace('_', ' ')}).")


def _show(ctx: Ctx, task_id: int) -> tuple[dict[str, Any], str | None]:
    """The documented figures, and why the task failed (if it did)."""
    task, _app = tasks.get_task(ctx, task_id)
    p = tasks.progress(ctx, task)
    return ({"id": task.id, "status": task.status, "total": p.total, "submitted": p.submitted,
             "delivered": p.delivered, "failed": p.failed, "remaining": p.remaining,
             "unsent": p.unsent,
             "paused_until": p.paused_until.isoformat() if p.paused_until else None},
            task.failure_reason)


@task_group.command("show")
@click.argument("task_id", type=int)
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
def task_show(task_id: int, as_user: str | None, as_json: bool) -> None:
    """Status and counts of a task."""
    shown, reason = _as(as_user, lambda ctx: _show(ctx, task_id))
    if as_json:
        click.echo(json.dumps(shown))
        return
    status = shown["status"].replace("_", " ") + (f" ({reason})" if reason else "")
    if shown["paused_until"]:
        status += f" (paused for quiet hours until {shown['paused_until']})"
    click.echo(f"Task {shown['id']}: {status}; "
               f"{shown['total']:,} recipient(s), {shown['submitted']:,} submitted, "
               f"{shown['delivered']:,} delivered, {shown['failed']:,} failed, "
               f"{shown['remaining']:,} remaining"
               + (f", {shown['unsent']:,} left unsent." if shown["unsent"] else "."))


@task_group.command("stop")
@click.argument("task_id", type=int)
@click.option("--as", "as_user", default=None, help=AS_HELP)
def task_stop(task_id: int, as_user: str | None) -> None:
    """Stop a sending task; the rest stays unsent."""
    _as(as_user, lambda ctx: tasks.stop(ctx, task_id))
    click.echo(f"Task {task_id} stopped.")


@task_group.command("cancel")
@click.argument("task_id", type=int)
@click.option("--as", "as_user", default=None, help=AS_HELP)
def task_cancel(task_id: int, as_user: str | None) -> None:
    """Cancel a scheduled or unconfirmed task."""
    _as(as_user, lambda ctx: tasks.cancel(ctx, task_id))
    click.echo(f"Task {task_id} cancelled.")

