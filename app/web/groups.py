"""Marketing: customer groups and the numbers in them (SPEC.md §4)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, send_file, url_for
from werkzeug.wrappers import Response as BaseResponse

from app.models.content import EFFECTIVE
from app.services import apps, audience, content, exports, tasks
from app.services.errors import Conflict, ValidationError
from app.services.values import record_ids
from app.sms import templating
from app.web import commit, ctx, form_errors, hx_redirect, page, page_number
from app.web.tasks import REGIONS, _int, _max_bytes, _send_at

bp = Blueprint("groups", __name__)


def _list(errors: dict[str, str] | None = None, status: int = 200,
          bad: list[audience.LineError] | None = None, which: str = "") -> Any:
    """The groups page; `which` names the form (create / pool) the errors belong to."""
    c = ctx()
    query = request.args.get("q", "")[:40]
    rows, total = audience.groups(c, query, page_number())
    every, _ = audience.groups(c, "", 1) if c.actor.can("AddCustomerNumbers") else ([], 0)
    # A refused form is answered with the whole page (its form picks its section out).
    fragment = "groups/_list.html" if request.method == "GET" else None
    return page("groups/index.html", fragment, status=status, rows=rows, total=total,
                query=query, page=page_number(), page_size=audience.PAGE_SIZE,
                errors=errors or {}, form=request.form, bad=bad or [], targets=every, which=which,
                sms_types=templating.SMS_TYPES, max_lines=audience.TYPED_MAX_LINES,
                can_create=c.actor.can("CreateCustomerGroup"),
                can_add=c.actor.can("AddCustomerNumbers"))


@bp.get("/groups")
def index() -> Any:
    return _list()


@bp.post("/groups")
def create() -> Any:
    try:
        group = audience.create_group(ctx(), name=request.form.get("name", ""),
                                      sms_type=request.form.get("sms_type", ""))
        commit()
    except (ValidationError, Conflict) as exc:
        return _list(form_errors(exc), 422, which="create")
    flash(f"Group “{group.name}” created.")
    return hx_redirect(url_for("groups.detail", gid=group.id))


def _add(group_id: int | str | None) -> audience.AddResult:
    """Typed numbers, or a file when one was chosen."""
    f, upload = request.form, request.files.get("file")
    if upload is not None and upload.filename:
        return audience.import_file(ctx(), upload.stream, upload.filename, group_id=group_id,
                                    new_name=f.get("new_name", ""),
                                    sms_type=f.get("sms_type", ""), max_bytes=_max_bytes())
    return audience.add_typed(ctx(), text=f.get("numbers", ""), group_id=group_id,
                              new_name=f.get("new_name", ""), sms_type=f.get("sms_type", ""))


@bp.post("/groups/numbers")
def add_to_pool() -> Any:
    """The customer pool: typed numbers or a file, into an existing group or a new one."""
    try:
        result = _add(request.form.get("group_id") or None)
        commit()
    except audience.BadLines as exc:
        return _list(form_errors(exc), 422, exc.lines, "pool")
    except (ValidationError, Conflict) as exc:
        return _list(form_errors(exc), 422, which="pool")
    flash(_added(result))
    return hx_redirect(url_for("groups.detail", gid=result.group.id))


def _added(result: audience.AddResult) -> str:
    merged = f"; {result.merged:,} already there or repeated, merged" if result.merged else ""
    return f"Added {result.added:,} number{'s' if result.added != 1 else ''}{merged}."


def _detail(gid: int, errors: dict[str, str] | None = None, status: int = 200,
            bad: list[audience.LineError] | None = None) -> Any:
    c = ctx()
    query = request.args.get("q", "")[:32]
    try:
        group, rows, total = audience.members(c, gid, query, page_number())
    except ValidationError as exc:
        errors = {**(errors or {}), "q": exc.errors["q"]}
        group, rows, total = audience.members(c, gid, "", page_number())
        query = ""
    fragment = "groups/_members.html" if request.method == "GET" else None
    return page("groups/detail.html", fragment, status=status, group=group,
                rows=rows, total=total, query=query, page=page_number(),
                page_size=audience.PAGE_SIZE, errors=errors or {}, form=request.form,
                bad=bad or [], sms_types=templating.SMS_TYPES,
                max_lines=audience.TYPED_MAX_LINES,
                can_add=c.actor.can("AddCustomerNumbers"),
                can_remove=c.actor.can("DeleteCustomerNumbers"),
                can_rename=c.actor.can("ModifyCustomerGroup"),
                can_delete=c.actor.can("DeleteCustomerGroup"),
                can_send=any(c.actor.can("CreateSendTask", a.sdk_app_id)
                             for a in apps.list_apps(c)))


@bp.get("/groups/<int:gid>")
def detail(gid: int) -> Any:
    return _detail(gid)


@bp.post("/groups/<int:gid>/numbers")
def add_numbers(gid: int) -> Any:
    try:
        result = _add(gid)
        commit()
    except audience.BadLines as exc:
        return _detail(gid, form_errors(exc), 422, exc.lines)
    except (ValidationError, Conflict) as exc:
        return _detail(gid, form_errors(exc), 422)
    flash(_added(result))
    return hx_redirect(url_for("groups.detail", gid=gid))


@bp.post("/groups/<int:gid>/numbers/delete")
def remove_numbers(gid: int) -> BaseResponse:
    ids = record_ids(request.form.getlist("id"))[:1000]
    removed = audience.remove_numbers(ctx(), gid, ids)
    commit()
    flash(f"Removed {removed} number{'s' if removed != 1 else ''}.")
    return redirect(url_for("groups.detail", gid=gid))


@bp.post("/groups/<int:gid>/rename")
def rename(gid: int) -> Any:
    try:
        audience.rename_group(ctx(), gid, request.form.get("name", ""))
        commit()
    except (ValidationError, Conflict) as exc:
        return _detail(gid, form_errors(exc), 422)
    flash("Group renamed.")
    return hx_redirect(url_for("groups.detail", gid=gid))


@bp.post("/groups/<int:gid>/delete")
def delete(gid: int) -> Any:
    try:
        audience.delete_group(ctx(), gid, confirm_name=request.form.get("confirm_name", ""))
        commit()
    except (ValidationError, Conflict) as exc:
        return _detail(gid, form_errors(exc), 422)
    flash("Group deleted.")
    return hx_redirect(url_for("groups.index"))


@bp.get("/groups/<int:gid>/export.csv")
def export(gid: int) -> Response:
    group, header, rows = audience.export_table(ctx(), gid)
    data = exports.spooled_csv(header, rows)
    return send_file(data, mimetype="text/csv", as_attachment=True,
                     download_name=f"group-{group.id}.csv")


def _send_form(gid: int, errors: dict[str, str] | None = None, status: int = 200) -> Any:
    c = ctx()
    region = content.valid_region(request.values.get("region", "mainland"))
    group = audience.get_group(c, gid)
    return page("groups/send.html", status=status, group=group, region=region,
                regions=REGIONS, errors=errors or {}, form=request.form,
                apps=[a for a in apps.list_apps(c) if c.actor.can("CreateSendTask",
                                                                   a.sdk_app_id)],
                templates=[t for t in content.list_templates(c, region)
                           if t.status == EFFECTIVE and t.sms_type == group.sms_type],
                signatures=[s for s in content.list_signatures(c, region) if s.usable])


@bp.get("/groups/<int:gid>/send")
def send_form(gid: int) -> Any:
    return _send_form(gid)


@bp.post("/groups/<int:gid>/send")
def send(gid: int) -> Any:
    """Send to a group: a bulk task made from the group, then the task's own confirm
    step (pre-flight, acknowledgement), progress and stop."""
    f = request.form
    try:
        template_id = _int(f.get("template_id", ""), "template_id")
        if template_id is None:
            raise ValidationError({"template_id": "Choose a template."})
        draft = tasks.Draft(f.get("sdk_app_id", "")[:10], template_id,
                            name=f.get("name", "")[:200], sign_name=f.get("sign_name") or None,
                            send_at=_send_at(f.get("send_at", "")),
                            rate_limit=_int(f.get("rate_limit", ""), "rate_limit"))
        values = [v.strip() for v in f.get("params", "").splitlines() if v.strip()]
        task, _summary = audience.send_to_group(
            ctx(), draft, gid, params=values if f.get("variables") == "same" else None)
        commit()
    except (ValidationError, Conflict) as exc:
        return _send_form(gid, form_errors(exc), 422)
    return hx_redirect(url_for("tasks.detail", task_id=task.id))
