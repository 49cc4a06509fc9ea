"""The overview dashboard: the landing page after login; it refreshes itself."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request, url_for
from werkzeug.routing import BuildError

from app.models import Message
from app.models.sending import FINAL
from app.services import alarms, console, sending
from app.services.errors import NotFound, PermissionDenied, ValidationError
from app.services.limits import Limiter
from app.services.values import digits
from app.sms import errors as errors_catalogue
from app.web import commit, ctx, form_errors, page, rollback

bp = Blueprint("dashboard", __name__)
REFRESH_SECONDS = 10
TASKS_REFRESH_SECONDS = 2  # running tasks move faster than the day's figures


def link_to(endpoint: str, **args: Any) -> str | None:
    """The address of a page if this installation has it (pages arrive one by one)."""
    if endpoint not in current_app.view_functions:
        return None
    try:
        return url_for(endpoint, **args)
    except BuildError:
        return None


@bp.get("/")
def index() -> tuple:
    c = ctx()
    view = console.overview(c, current_app.config.get("GATEWAY", "simulator"))
    return page("dashboard/index.html", "dashboard/_figures.html", view=view,
                link_to=link_to, refresh=REFRESH_SECONDS, tasks_refresh=TASKS_REFRESH_SECONDS,
                regions={"mainland": "Mainland China", "international": "International"},
                events=alarms.EVENTS, can_create=_can_create(c))


@bp.get("/dashboard/tasks")
def running_tasks() -> tuple:
    """The running-tasks tile alone: it refreshes itself while tasks are sending."""
    c = ctx()
    return page("dashboard/_tasks.html", running=console.running_tasks(c),
                tasks_refresh=TASKS_REFRESH_SECONDS, can_create=_can_create(c))


def _can_create(c: Any) -> bool:
    return console.can_reach(c.actor, "CreateSendTask", per_app=True)


# --- a test message: the API's checks and sending service, from a form --------------------

POLL_SECONDS = 2  # the result block asks again until the message reaches a final state


@bp.route("/send", methods=["GET", "POST"])
def test_send() -> tuple:
    c = ctx()
    choices = console.send_choices(c)
    form = request.form if request.method == "POST" else request.args
    errors: dict[str, str] = {}
    result: sending.SendStatus | None = None
    sdk_app_id = form.get("app", "")[:10]
    if request.method == "POST":
        raw_template = form.get("template", "")
        body = {"phone_numbers": [form.get("number", "")[:64]],
                "template_id": int(raw_template) if digits(raw_template)
                and len(raw_template) < 11 else None,
                "template_params": [p.strip() for p in form.get("params", "").splitlines()
                                    if p.strip()]}
        try:
            req = sending.validate_request(body)
            _request_id, [result] = sending.send(c, Limiter(current_app.extensions["redis"]),
                                                 sdk_app_id, req)
            commit()
        except ValidationError as exc:
            errors = {FIELDS.get(k, k): v for k, v in form_errors(exc).items()}
        except (NotFound, PermissionDenied) as exc:  # an application one may not send with
            rollback()
            errors = {"app": exc.message}
    status = 422 if errors else 200
    return page("dashboard/send.html", "dashboard/_send.html", status=status,
                choices=choices, form=form, errors=errors, result=result, sdk_app_id=sdk_app_id,
                msg=_message(c, sdk_app_id, result), final=FINAL, poll=POLL_SECONDS,
                describe=errors_catalogue.describe)


FIELDS = {"phone_numbers": "number", "template_id": "template", "template_params": "params"}


def _message(c: Any, sdk_app_id: str, result: sending.SendStatus | None) -> Message | None:
    """The recorded message, when the actor may read send records (else just the result)."""
    if result is None or not c.actor.can("DescribeSendSmsRecord", sdk_app_id):
        return None
    return sending.get_message(c, sdk_app_id, result.serial_no)


@bp.get("/send/<sdk_app_id>/<serial_no>")
def sent_status(sdk_app_id: str, serial_no: str) -> tuple:
    """The message's state, until its receipt (or another final state) arrives."""
    msg = sending.get_message(ctx(), sdk_app_id[:10], serial_no[:40])
    return page("dashboard/_sent.html", msg=msg, sdk_app_id=sdk_app_id, final=FINAL,
                poll=POLL_SECONDS, describe=errors_catalogue.describe)
