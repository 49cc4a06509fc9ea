"""POST /slack/events: Bolt verifies the signature and the 5-minute window."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from slack_bolt.adapter.flask import SlackRequestHandler
from werkzeug.wrappers import Response

bp = Blueprint("slack", __name__)


@bp.post("/slack/events")
def events() -> Response | tuple[Response, int]:
    bolt = current_app.extensions.get("slack")
    if bolt is None or not current_app.config.get("SLACK_SIGNING_SECRET"):
        # Never serve unsigned requests: without a signing secret, only Socket Mode runs.
        return jsonify(error="Slack is not configured on this installation."), 404
    return SlackRequestHandler(bolt).handle(request)
