"""General management: mute list, unsubscribed users, replies, credit packages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.db import utcnow
from app.models import Signature
from app.services import apps, content, mute, packages, replies, unsubscribes
from app.services.errors import Conflict, ValidationError
from app.services.values import record_ids
from app.sms import numbers, templating
from app.web import commit, ctx, form_errors, page, rollback

bp = Blueprint("general", __name__)


def _signatures() -> dict[int, Signature]:
    c = ctx()
    found = content.list_signatures(c, "mainland") + content.list_signatures(c, "international")
    return {s.id: s for s in found}



@bp.route("/mute", methods=["GET", "POST"])
def mute_list() -> Any:
    c = ctx()
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            _entry, added = mute.add_entry(
                c, phone_number=request.form.get("phone_number", ""),
                signature_id=request.form.get("signature_id", ""),
                sms_type=request.form.get("sms_type", ""),
                consent=request.form.get("consent") == "on")
            commit()
            flash("Added to the mute list." if added else
                  "Already on the mute list for that signature and type: nothing changed.")
            return redirect(url_for("general.mute_list"))
        except (ValidationError, Conflict) as exc:
            errors = form_errors(exc)
    query = request.args.get("q", "")
    try:
        rows = mute.entries(c, query)
    except ValidationError as exc:
        rows, errors = [], {**errors, "q": exc.errors["phone_number"]}
    return page("general/mute.html", status=422 if errors else 200, rows=rows, query=query,
                errors=errors, form=request.form, signatures=_signatures(),
                sms_types=templating.SMS_TYPES, can_edit=c.actor.can("AddBlackList"))


@bp.post("/mute/delete")
def mute_delete() -> Response:
    ids = record_ids(request.form.getlist("id"))
    removed = mute.remove(ctx(), ids)
    commit()
    flash(f"Removed {removed} entr{'y' if removed == 1 else 'ies'} from the mute list.")
    return redirect(url_for("general.mute_list"))


@bp.route("/unsubscribes", methods=["GET", "POST"])
def unsubscribed() -> Any:
    c = ctx()
    errors: dict[str, str] = {}
    found = None
    if request.method == "POST":
        try:
            unsubscribes.request_removal(c, phone_number=request.form.get("phone_number", ""),
                                         signature_id=request.form.get("signature_id", ""),
                                         sms_type=request.form.get("sms_type", ""),
                                         reason=request.form.get("reason", ""))
            commit()
            flash("Removal requested; it waits for review.")
            return redirect(url_for("general.unsubscribed"))
        except (ValidationError, Conflict) as exc:
            errors = form_errors(exc)
    number = request.args.get("number", "")
    if number:
        try:
            found = unsubscribes.query(c, phone_number=number,
                                       sdk_app_id=request.args.get("app", ""),
                                       signature_id=request.args.get("signature_id", ""))
        except ValidationError as exc:
            errors["number"] = exc.errors.get("phone_number", exc.message)
    return page("general/unsubscribes.html", status=422 if errors else 200, found=found,
                number=number, errors=errors, form=request.form, signatures=_signatures(),
                sms_types=templating.SMS_TYPES, requests=unsubscribes.requests(c),
                apps=apps.list_apps(c), can_request=c.actor.can("ModifyUnsubscribe"))


@bp.route("/replies", methods=["GET", "POST"])
def reply_list() -> Any:
    """Replies received; with the simulator, replies can be injected here."""
    c = ctx()
    simulator = current_app.config.get("GATEWAY", "simulator") == "simulator"
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not simulator:
            return redirect(url_for("general.reply_list"))
        try:
            reply = replies.simulate(c, request.form.get("phone_number", ""),
                                     request.form.get("text", "")[:1000])
            commit()
            flash("Reply received" + ("; the number is now unsubscribed." if reply.unsubscribed
                                      else "."))
            return redirect(url_for("general.reply_list"))
        except numbers.NumberError as exc:
            rollback()
            errors = {"phone_number": str(exc)}
    return page("general/replies.html", status=422 if errors else 200,
                rows=replies.recent(c), simulator=simulator, errors=errors, form=request.form,
                keywords=sorted(replies.OPT_OUT_WORDS))


@bp.route("/packages", methods=["GET", "POST"])
def credit_packages() -> Any:
    c = ctx()
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            if request.form.get("form") == "threshold":
                packages.set_alarm_threshold(c, request.form.get("package_alarm_threshold"))
            else:
                packages.add(c, name=request.form.get("name", ""),
                             size=request.form.get("size", ""),
                             expires_on=request.form.get("expires_on", ""))
            commit()
            flash("Saved.")
            return redirect(url_for("general.credit_packages"))
        except ValidationError as exc:
            errors = form_errors(exc)
    items = packages.packages(c)
    from app.services.accounts import get_settings

    account = get_settings(c) if c.actor.can("DescribeAccountSettings") else None
    zone = packages.account_zone(current_user.account)
    return page("general/packages.html", status=422 if errors else 200, items=items,
                balance=packages.balance(items), errors=errors, form=request.form,
                account=account, can_edit=c.actor.can("ModifyPackage"),
                expires_on=lambda p: packages.expiry_date(p, zone), now=utcnow(),
                zone_name=current_user.account.timezone)
