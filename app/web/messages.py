"""The SMS log: every message with its state, code and reason."""

from __future__ import annotations

from flask import Blueprint, request

from app.models.sending import FINAL, STATUSES
from app.services import apps, console, sending
from app.sms import errors
from app.web import ctx, page, page_number

bp = Blueprint("messages", __name__)


@bp.get("/messages")
def index() -> tuple:
    c = ctx()
    f = sending.LogFilter(
        sdk_app_id=request.args.get("app", "")[:10],
        phone_number=request.args.get("number", "")[:32],
        status=request.args.get("status", "")[:20],  # the service refuses unknown values
        period=request.args.get("period", "7d")[:20],
        page=page_number(),
    )
    rows, total = sending.log(c, f)
    return page("messages/index.html", "messages/_rows.html", rows=rows, total=total, f=f,
                apps=apps.list_apps(c), statuses=STATUSES, periods=sending.PERIODS,
                describe=errors.describe, page_size=sending.LOG_PAGE, final=FINAL,
                poll=LIVE_SECONDS)


LIVE_SECONDS = 3  # rows still in flight refresh this often while the log is open


@bp.get("/messages/live")
def live() -> tuple:
    """Rows still in flight, each swapped into place (out of band), and the poller with
    the ids still left to watch (none: it stops)."""
    raw = request.args.get("ids", "")[:1200].split(",")
    ids = [int(i) for i in raw if i.isdigit() and len(i) < 19]
    rows = console.messages_now(ctx(), ids)
    return page("messages/_live.html", rows=rows, describe=errors.describe, final=FINAL,
                poll=LIVE_SECONDS)
