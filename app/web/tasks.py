"""Bulk send tasks on the web: list with live progress, create from a file, row
errors, confirm, progress, details with records and receipt analysis."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, render_template, request, send_file, url_for
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from app.models import SendTask
from app.services import apps, content, tasks
from app.services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.services.limits import Limiter
from app.sms import errors as error_catalogue
from app.sms.text import MAINLAND
from app.web import commit, ctx, form_errors, hx_redirect, page, page_number, rollback

bp = Blueprint("tasks", __name__)
REGIONS = {"mainland": "Mainland China", "international": "International"}


def _region() -> str:
    return content.valid_region(request.values.get("region", MAINLAND))


def _max_bytes() -> int:
    return int(current_app.config.get("TASK_MAX_UPLOAD_MB", 30)) * 1024 * 1024


@bp.get("/tasks")
def index() -> tuple:
    c = ctx()
    region = _region()
    rows, total = tasks.list_tasks(c, region, page=page_number())
    progress = tasks.progress_of(c, [t for t, _a in rows])
    live = any(t.status in ("sending", "scheduled") for t, _a in rows)
    return page("tasks/index.html", "tasks/_list.html", region=region, regions=REGIONS,
                rows=rows, total=total, progress=progress, live=live, page_no=page_number(),
                page_size=tasks.PAGE)


def _form_page(errors: dict[str, str], status: int = 200) -> tuple:
    c = ctx()
    region = _region()
    templates, signatures = tasks.content_choices(c, region)
    return page("tasks/new.html", region=region, regions=REGIONS, errors=errors,
                form=request.form, status=status,
                apps=apps.list_apps(c, "CreateSendTask"), templates=templates,
                signatures=signatures)


@bp.get("/tasks/new")
def new() -> tuple:
    return _form_page({})


def _send_at(raw: str) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError({"send_at": "Give a date and time, e.g. 2026-12-01 09:00."}) \
            from None
    zone = ZoneInfo(current_user.account.timezone)
    return local.replace(tzinfo=zone) if local.tzinfo is None else local


def _int(raw: str, field: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise ValidationError({field: "Give a whole number."})
    return int(raw)


@bp.post("/tasks")
def create() -> tuple | Response:
    c = ctx()
    f = request.form
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise ValidationError({"file": "Choose a CSV or XLSX file."})
        template_id = _int(f.get("template_id", ""), "template_id")
        if template_id is None:
            raise ValidationError({"template_id": "Choose a template."})
        draft = tasks.Draft(f.get("sdk_app_id", "")[:10], template_id,
                            name=f.get("name", "")[:200], sign_name=f.get("sign_name") or None,
                            send_at=_send_at(f.get("send_at", "")),
                            rate_limit=_int(f.get("rate_limit", ""), "rate_limit"))
        task, _summary = tasks.create_task(c, draft, upload.stream, upload.filename,
                                           max_bytes=_max_bytes())
        commit()
    except (ValidationError, Conflict) as exc:
        return _form_page(form_errors(exc), 422)
    return hx_redirect(url_for("tasks.detail", task_id=task.id))


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> tuple:
    """A body past MAX_CONTENT_LENGTH: the form cannot be read back, so the error page
    (an htmx upload shows its message in a toast and keeps the form as filled in)."""
    rollback()
    message = (f"The file is too large: at most {_max_bytes() // 1048576} MB are allowed. "
               "Split it into smaller files.")
    return render_template("error.html", status=413, message=message), 413


@bp.get("/tasks/standard-file")
def standard_file() -> Response:
    template_id = _int(request.args.get("template_id", ""), "template_id")
    if template_id is None:
        raise ValidationError({"template_id": "Choose a template first."})
    data, mimetype, name = tasks.standard_file(ctx(), template_id,
                                               request.args.get("format", "csv")[:8],
                                               for_task=True)  # the task form's link
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True,
                     download_name=name)


def _detail(task_id: int, errors: dict[str, str] | None = None, status: int = 200) -> tuple:
    c = ctx()
    task, app = tasks.get_task(c, task_id)
    preflight = None
    if task.status == "awaiting_confirmation" and c.actor.can("CreateSendTask", app.sdk_app_id):
        preflight = tasks.preflight(c, Limiter(current_app.extensions["redis"]), task.id)
    record_status = request.args.get("status", "")[:20]
    number = request.args.get("number", "")[:32]
    _t, records, records_total = tasks.records(c, task.id, status=record_status,
                                               number=number, page=page_number())
    progress = tasks.progress(c, task)
    return page("tasks/detail.html", status=status, task=task, app=app,
                progress=progress, preflight=preflight, live=_live(task, progress),
                follow=FOLLOW_SECONDS,
                row_errors=list(tasks.row_errors(c, task)), errors=errors or {},
                analysis=tasks.receipt_analysis(c, task.id), records=records,
                records_total=records_total, record_status=record_status, number=number,
                record_statuses=tasks.RECORD_STATUSES, page_no=page_number(),
                page_size=tasks.PAGE, describe=error_catalogue.describe,
                can_stop=c.actor.can("ModifyTaskStatusStop", app.sdk_app_id),
                can_cancel=c.actor.can("CancelSendSMSTask", app.sdk_app_id))


@bp.get("/tasks/<int:task_id>")
def detail(task_id: int) -> tuple:
    return _detail(task_id)


@bp.get("/tasks/<int:task_id>/progress")
def progress(task_id: int) -> tuple:
    c = ctx()
    task, app = tasks.get_task(c, task_id)
    return page("tasks/_progress.html", task=task, app=app, progress=tasks.progress(c, task),
                can_stop=c.actor.can("ModifyTaskStatusStop", app.sdk_app_id),
                can_cancel=c.actor.can("CancelSendSMSTask", app.sdk_app_id))


ACTIVE = ("sending", "scheduled", "validating")
FOLLOW_SECONDS = 5  # how often the records and receipt analysis of a live task refresh


def _live(task: SendTask, progress: tasks.Progress) -> bool:
    """Still changing: sending (or about to), or messages still await their receipts."""
    return task.status in ACTIVE or progress.awaiting_receipt > 0


@bp.get("/tasks/<int:task_id>/receipts")
def receipts(task_id: int) -> tuple:
    c = ctx()
    task, _app = tasks.get_task(c, task_id)
    return page("tasks/_receipts.html", task=task, analysis=tasks.receipt_analysis(c, task_id),
                live=_live(task, tasks.progress(c, task)), follow=FOLLOW_SECONDS)


@bp.get("/tasks/<int:task_id>/records")
def records(task_id: int) -> tuple:
    c = ctx()
    record_status = request.args.get("status", "")[:20]
    number = request.args.get("number", "")[:32]
    task, rows, total = tasks.records(c, task_id, status=record_status, number=number,
                                      page=page_number())
    return page("tasks/_records.html", task=task, records=rows, records_total=total,
                record_status=record_status, number=number, page_no=page_number(),
                page_size=tasks.PAGE, describe=error_catalogue.describe,
                live=_live(task, tasks.progress(c, task)), follow=FOLLOW_SECONDS)


@bp.get("/tasks/<int:task_id>/records.csv")
def records_csv(task_id: int) -> Response:
    out = tasks.records_csv(ctx(), task_id, status=request.args.get("status", "")[:20],
                            number=request.args.get("number", "")[:32])
    return send_file(out, mimetype="text/csv", as_attachment=True,
                     download_name=f"task-{task_id}-records.csv")


@bp.get("/tasks/<int:task_id>/errors.csv")
def errors_csv(task_id: int) -> Response:
    out = tasks.errors_csv(ctx(), task_id)
    return send_file(out, mimetype="text/csv", as_attachment=True,
                     download_name=f"task-{task_id}-row-errors.csv")


def _act(task_id: int, action: str) -> tuple | Response:
    c = ctx()
    try:
        if action == "confirm":
            tasks.confirm(c, task_id, acknowledged=request.form.get("acknowledge") == "yes")
            message = "Task confirmed."
        elif action == "stop":
            tasks.stop(c, task_id)
            message = "Task stopped: the rest stays unsent."
        else:
            tasks.cancel(c, task_id)
            message = "Task cancelled."
        commit()
    except (ValidationError, Conflict) as exc:
        return _detail(task_id, form_errors(exc), 422)
    try:  # back to the task, if this user may see it
        tasks.get_task(c, task_id)
        where = url_for("tasks.detail", task_id=task_id)
    except (NotFound, PermissionDenied):  # found from outside: a cancel-only user got 404
        message, where = f"Task {task_id}: {message}", url_for("dashboard.index")
    flash(message)
    return hx_redirect(where)


@bp.post("/tasks/<int:task_id>/confirm")
def confirm(task_id: int) -> tuple | Response:
    return _act(task_id, "confirm")


@bp.post("/tasks/<int:task_id>/stop")
def stop(task_id: int) -> tuple | Response:
    return _act(task_id, "stop")


@bp.post("/tasks/<int:task_id>/cancel")
def cancel(task_id: int) -> tuple | Response:
    return _act(task_id, "cancel")

