"""Qualifications, signatures, templates and the review queue on the web."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, request, send_file, url_for
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from app.models.content import EDITABLE, STATUS_LABELS
from app.notify.email import read_outbox
from app.services import content, notifications, reviews
from app.services.errors import Conflict, PermissionDenied, ValidationError
from app.services.uploads import Upload, image_path
from app.services.values import record_id, record_ids
from app.sms import templating
from app.sms.text import MAINLAND
from app.web import commit, ctx, form_errors, page, page_number, rollback

bp = Blueprint("content", __name__, url_prefix="")
log = logging.getLogger("smsops.web")

LABELS: dict[str, Any] = {"statuses": STATUS_LABELS, "sms_types": templating.SMS_TYPES,
          "sign_types": content.SIGN_TYPES, "purposes": content.PURPOSES, "uses": content.USES,
          "regions": {"mainland": "Mainland China", "international": "International"}}


def _region() -> str:
    """The region asked for (mainland when none); an unknown one is refused (400)."""
    return content.valid_region(request.values.get("region", MAINLAND))



def _save(save: Callable[[], Any], name: Callable[[Any], str],
          done: Callable[[Any], str]) -> tuple[Response | None, dict[str, str]]:
    """Submit a content form: on success commit and go back to the list; on a
    user's error, the errors to show beside the fields."""
    try:
        item = save()
        commit()
    except (ValidationError, Conflict) as exc:
        rollback()  # e.g. an edit that lost a race with a decision: nothing half-written
        return None, form_errors(exc)
    flash(f"{name(item)} submitted for review.")
    return redirect(done(item)), {}


def _upload(name: str) -> Upload | None:
    f = request.files.get(name)
    return Upload(f.filename or "", f.read()) if f and f.filename else None


# --- templates -------------------------------------------------------------------

@bp.get("/content/templates")
def templates() -> tuple:
    region = _region()
    c = ctx()
    return page("content/templates.html", region=region, items=content.list_templates(c, region),
                can_add=c.actor.can("AddSmsTemplate"), **LABELS)


@bp.route("/content/templates/new", methods=["GET", "POST"])
@bp.route("/content/templates/<int:tid>", methods=["GET", "POST"])
def template_form(tid: int | None = None) -> Any:
    c = ctx()
    item = content.get_template(c, tid) if tid else None
    region = item.region if item else _region()
    errors: dict[str, str] = {}
    form: Any = request.form if request.method == "POST" else {}
    if request.method == "POST":
        done, errors = _save(
            lambda: content.update_template(c, tid, request.form) if tid
            else content.create_template(c, region, request.form),
            lambda t: f"Template “{t.name}”",
            lambda t: url_for("content.templates", region=t.region))
        if done:
            return done
        item = content.get_template(c, tid) if tid else None
    elif item is None:
        c.actor.require("AddSmsTemplate")
    editable = (item is None and c.actor.can("AddSmsTemplate")) or (
        item is not None and item.status in EDITABLE and c.actor.can("ModifySmsTemplate"))
    return page("content/template_form.html", "content/_template_form.html",
                status=422 if errors else 200, item=item, region=region, form=form,
                errors=errors, editable=editable,
                can_modify=c.actor.can("ModifySmsTemplate"),
                param_max=c.settings.template_param_max_length, **LABELS)


@bp.post("/content/templates/preview")
def template_preview() -> tuple:
    """The live counter: variables, encoding and billed items as you type."""
    result = content.preview(ctx(), _region(), request.form.get("sms_type", ""),
                             request.form.get("content", "")[:5000])
    return page("content/_counter.html", result=result)


@bp.post("/content/templates/<int:tid>/carrier")
def template_carrier(tid: int) -> Any:
    try:
        t = content.set_carrier_template_id(ctx(), tid,
                                            request.form.get("carrier_template_id", ""))
        commit()
        flash("Carrier template id saved; the template is pending review again."
              if t.status == "pending" else "Carrier template id saved.")
    except ValidationError as exc:
        rollback()
        flash(exc.errors.get("carrier_template_id", exc.message), "error")
    except Conflict as exc:
        rollback()
        flash(exc.message, "error")
    return redirect(url_for("content.template_form", tid=tid))


@bp.post("/content/templates/<int:tid>/delete")
def template_delete(tid: int) -> Response:
    c = ctx()
    region = content.get_template(c, tid).region
    content.delete_template(c, tid)
    commit()
    flash("Template deleted.")
    return redirect(url_for("content.templates", region=region))


# --- signatures ------------------------------------------------------------------

@bp.get("/content/signatures")
def signatures() -> tuple:
    region = _region()
    c = ctx()
    return page("content/signatures.html", region=region,
                items=content.list_signatures(c, region), can_add=c.actor.can("AddSmsSign"),
                **LABELS)


@bp.route("/content/signatures/new", methods=["GET", "POST"])
@bp.route("/content/signatures/<int:sid>", methods=["GET", "POST"])
def signature_form(sid: int | None = None) -> Any:
    c = ctx()
    item = content.get_signature(c, sid) if sid else None
    region = item.region if item else _region()
    errors: dict[str, str] = {}
    form: Any = request.form if request.method == "POST" else {}
    if request.method == "POST":
        uploads = {"proof": _upload("proof_image"),
                   "authorization": _upload("authorization_image")}
        done, errors = _save(
            lambda: content.update_signature(c, sid, request.form, **uploads) if sid
            else content.create_signature(c, region, request.form, **uploads),
            lambda s: f"Signature “{s.content}”",
            lambda s: url_for("content.signatures", region=s.region))
        if done:
            return done
        item = content.get_signature(c, sid) if sid else None
    elif item is None:
        c.actor.require("AddSmsSign")
    editable = (item is None and c.actor.can("AddSmsSign")) or (
        item is not None and item.status in EDITABLE and c.actor.can("ModifySmsSign"))
    qualifications = [q for q in content.list_qualifications(c) if q.status == "approved"] if (
        region == MAINLAND and c.actor.can("DescribeQualification")) else []
    return page("content/signature_form.html", status=422 if errors else 200, item=item,
                region=region, form=form, errors=errors, editable=editable,
                qualifications=qualifications, **LABELS)


@bp.get("/content/signatures/<int:sid>/<any(proof_image, authorization_image):field>")
def signature_image(sid: int, field: str) -> Response:
    """Proof images only for users allowed to see the signature; never from static/."""
    item = content.get_signature(ctx(), sid)
    name = getattr(item, field)
    if not name:
        abort(404)
    folder = ctx().settings.upload_dir
    path, mimetype = image_path(folder, name)
    if not path.exists():
        abort(404)
    return send_file(path, mimetype=mimetype, max_age=0)


@bp.post("/content/signatures/<int:sid>/delete")
def signature_delete(sid: int) -> Response:
    c = ctx()
    region = content.get_signature(c, sid).region
    content.delete_signature(c, sid)
    commit()
    flash("Signature deleted.")
    return redirect(url_for("content.signatures", region=region))


# --- qualifications --------------------------------------------------------------

@bp.get("/content/qualifications")
def qualifications() -> tuple:
    c = ctx()
    return page("content/qualifications.html", items=content.list_qualifications(c),
                can_add=c.actor.can("AddQualification"),
                can_delete=c.actor.can("DeleteQualification"), **LABELS)


@bp.route("/content/qualifications/new", methods=["GET", "POST"])
@bp.route("/content/qualifications/<int:qid>", methods=["GET", "POST"])
def qualification_form(qid: int | None = None) -> Any:
    c = ctx()
    item = content.get_qualification(c, qid) if qid else None
    errors: dict[str, str] = {}
    form: Any = request.form if request.method == "POST" else {}
    if request.method == "POST":
        done, errors = _save(
            lambda: content.update_qualification(c, qid, request.form.to_dict()) if qid
            else content.create_qualification(c, request.form.to_dict()),
            lambda q: f"Qualification “{q.enterprise_name}”",
            lambda _q: url_for("content.qualifications"))
        if done:
            return done
        item = content.get_qualification(c, qid) if qid else None
    elif item is None:
        c.actor.require("AddQualification")
    locked = () if item is None or item.status in EDITABLE else tuple(
        f for f in content.QUALIFICATION_FIELDS if f not in content.QUALIFICATION_APPROVED_FIELDS)
    editable = c.actor.can("ModifyQualification" if item else "AddQualification")
    return page("content/qualification_form.html", status=422 if errors else 200, item=item,
                form=form, errors=errors, locked=locked, editable=editable, **LABELS)


@bp.post("/content/qualifications/delete")
def qualifications_delete() -> Any:
    """Two steps: show which signatures become unusable, then delete on confirmation."""
    c = ctx()
    ids = record_ids(request.form.getlist("id"))
    if not ids:
        flash("Select the qualifications to delete.", "error")
        return redirect(url_for("content.qualifications"))
    if request.form.get("confirmed") != "yes":
        c.actor.require("DeleteQualification")
        chosen = [content.get_qualification(c, i) for i in ids]
        return page("content/qualifications_delete.html", chosen=chosen,
                    affected=content.deletion_impact(c, ids), **LABELS)
    affected = content.delete_qualifications(c, ids)
    commit()
    flash(f"Deleted {len(ids)} qualification(s); {len(affected)} signature(s) are now unusable.")
    return redirect(url_for("content.qualifications"))


# --- reviews and notifications --------------------------------------------------

@bp.get("/reviews")
def review_queue() -> tuple:
    c = ctx()
    return page("reviews/index.html", items=reviews.queue(c),
                can_review=c.actor.can("ReviewContent"), me=c.actor.user_id, **LABELS)


@bp.post("/reviews/<kind>/<int:obj_id>/<any(approve, reject):decision>")
def review_decide(kind: str, obj_id: int, decision: str) -> Any:
    c = ctx()
    error = None
    # The revision the page showed; without one, nothing this reviewer saw can be named.
    shown = request.form.get("revision", "")
    revision = record_id(shown) or 0
    try:
        if decision == "approve":
            reviews.approve(c, kind, obj_id, revision=revision)
        else:
            reviews.reject(c, kind, obj_id, request.form.get("reason", ""), revision=revision)
        commit()
    except (ValidationError, Conflict, PermissionDenied) as exc:
        rollback()
        error = exc.message
    obj = reviews.load(c, kind, obj_id)
    item = reviews.ReviewItem(kind, obj, reviews.title_of(kind, obj), [], reviews.facts_of(obj))
    message = error or f"{kind.capitalize()} “{item.title}”: {STATUS_LABELS[obj.status]}."
    if not request.htmx:  # type: ignore[attr-defined]
        flash(message, "error" if error else "message")
        return redirect(url_for("content.review_queue"))
    if not error:  # a toast beside the card updated in place (errors show in the card)
        flash(message)
    body, status = page("reviews/_item.html", status=422 if error else 200, item=item,
                        error=error, can_review=c.actor.can("ReviewContent"),
                        me=c.actor.user_id, **LABELS)
    return body, status, {"HX-Trigger": REVIEWS_CHANGED}


@bp.get("/notifications")
def notification_log() -> tuple:
    c = ctx()
    rows, total = notifications.log(c, page_number())
    outbox = read_outbox(current_app.config) if not current_app.config.get("SMTP_HOST") \
        and notifications.may_read_outbox(c) else []
    return page("notifications/index.html", rows=rows, total=total, outbox=outbox,
                retry_note=notifications.retry_note)


# --- the review count, kept current on every page ---------------------------------

REVIEWS_CHANGED = "reviews-changed"  # an htmx event: counts of pending items refresh


def _pending_count() -> int | None:
    """None for users who cannot see the queue (and when the database cannot answer:
    the badge must never break a page, an error page least of all)."""
    c = ctx()
    if not c.actor.can("DescribeSmsTemplateList"):
        return None
    try:
        return reviews.pending_count(c)
    except SQLAlchemyError:
        log.warning("could not count pending reviews", exc_info=True)
        return None


@bp.app_context_processor
def _review_badge() -> dict[str, Any]:
    """`pending_reviews()` for the navigation's badge (templates/reviews/_count.html),
    which refreshes itself when a decision fires REVIEWS_CHANGED."""
    return {"pending_reviews": _pending_count}


@bp.get("/reviews/count")
def review_count() -> tuple:
    style = "heading" if request.args.get("style") == "heading" else "badge"
    return page("reviews/_count.html", count=_pending_count() or 0, style=style)
