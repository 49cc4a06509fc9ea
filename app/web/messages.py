"""The SMS log: every message with its state, code and reason; the replies; CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, request, send_file

from app.models.sending import FINAL, STATUSES
from app.services import apps, console, exports, replies, sending, stats
from app.services.values import digits
from app.sms import errors, outcomes
from app.sms.periods import PERIODS
from app.sms.text import parts_of
from app.web import ctx, local_time, page, page_number
from app.web.stats import choice_id

bp = Blueprint("messages", __name__)

LIVE_SECONDS = 3  # rows still in flight refresh this often while the log is open


def _filter() -> sending.LogFilter:
    return sending.LogFilter(
        sdk_app_id=request.args.get("app", "")[:10],
        phone_number=request.args.get("number", "")[:32],
        status=request.args.get("status", "")[:20],  # the service refuses unknown values
        period=request.args.get("period", "7d")[:20],
        page=page_number(),
        template_id=choice_id("template"), signature_id=choice_id("signature"),
        iso_code=request.args.get("country", "")[:2],
        region=request.args.get("region", "")[:16],
        start=request.args.get("start", "")[:10], end=request.args.get("end", "")[:10],
    )


@bp.get("/messages")
def index() -> Any:
    c = ctx()
    f = _filter()
    if request.args.get("export") == "csv":
        return _export(f)
    rows, total = sending.log(c, f)
    # Both regions' content, each named with its region (a name may be in both).
    choices = {region: stats.choices(c, region) for region in stats.REGIONS}
    return page("messages/index.html", "messages/_rows.html", rows=rows, total=total, f=f,
                apps=apps.list_apps(c),
                templates=[(i, f"{name} ({region})") for region, found in choices.items()
                           for i, name in found["templates"]],
                signatures=[(i, f"{name} ({region})") for region, found in choices.items()
                            for i, name in found["signatures"]],
                statuses=STATUSES, periods=PERIODS, regions=stats.REGIONS,
                describe=errors.describe, page_size=sending.LOG_PAGE, final=FINAL,
                poll=LIVE_SECONDS, count_cap=sending.count_cap(f))


@bp.get("/messages/live")
def live() -> tuple:
    """Rows still in flight, each swapped into place (out of band), and the poller with
    the ids still left to watch (none: it stops)."""
    raw = request.args.get("ids", "")[:1200].split(",")
    ids = [int(i) for i in raw if digits(i) and len(i) < 19]
    rows = console.messages_now(ctx(), ids)
    return page("messages/_live.html", rows=rows, describe=errors.describe, final=FINAL,
                poll=LIVE_SECONDS)


def _export(f: sending.LogFilter) -> Response:
    rows = sending.log_export(ctx(), f)
    header = ["created_at", "app", "serial_no", "phone_number", "country", "content",
              "characters", "parts", "billed_items", "sms_type", "status", "error_code",
              "reason", "carrier_code", "submitted_at", "receipt_at"]
    def at(moment: datetime | None) -> str:  # in the account's zone, as the page shows
        return local_time(moment).isoformat() if moment else ""

    data = exports.spooled_csv(header, ([
        at(m.created_at), sdk_app_id, m.serial_no, m.phone_number, m.iso_code,
        m.content, len(m.content), parts_of(m.content, m.region), outcomes.billed_items(m),
        m.sms_type, m.status, m.error_code or "",
        errors.describe(m.error_code).reason if m.error_code else "", m.carrier_code or "",
        at(m.submitted_at), at(m.receipt_at)] for m, sdk_app_id in rows))
    return send_file(data, mimetype="text/csv", as_attachment=True,
                     download_name=f"sms-log-{f.period}.csv")


@bp.get("/messages/replies")
def reply_log() -> Any:
    number = request.args.get("number", "")[:32]
    rows = replies.recent(ctx(), limit=500, number=number)
    return page("messages/replies.html", "messages/_replies.html", rows=rows, number=number)
