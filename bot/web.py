"""POST /slack/events: the signature, the 5-minute window and replays are checked here
before Bolt runs anything (Bolt checks the first two again)."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from redis.exceptions import RedisError
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from werkzeug.wrappers import Response

bp = Blueprint("slack", __name__)
log = logging.getLogger("smsops.slack")
SEEN_TTL_S = 6 * 60  # past Slack's five-minute window, a replay is refused as stale


@bp.post("/slack/events")
def events() -> Response | tuple[Response, int]:
    bolt = current_app.extensions.get("slack")
    secret = current_app.config.get("SLACK_SIGNING_SECRET")
    if bolt is None or not secret:
        # Never serve unsigned requests: without a signing secret, only Socket Mode runs.
        return jsonify(error="Slack is not configured on this installation."), 404
    ts = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    # slack_sdk reads the timestamp with int(): anything else would raise (a 500).
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12) \
            or not SignatureVerifier(secret).is_valid(request.get_data(), ts, signature):
        return jsonify(error="invalid request"), 401
    # A signed request is taken once: the same one posted again within the window (a
    # captured `/sms send`, say) would act again. Slack's own retries are done already.
    try:
        first = current_app.extensions["redis"].set(f"smsops:slack:seen:{signature}", 1,
                                                    nx=True, ex=SEEN_TTL_S)
    except RedisError as exc:
        log.warning("Slack request refused: replays cannot be checked (%s)", exc)
        return jsonify(error="unavailable"), 503
    if not first:
        return Response(status=200)
    return SlackRequestHandler(bolt).handle(request)
