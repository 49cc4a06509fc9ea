"""GET /healthz: is the database and Redis reachable? Also how many workers RQ lists
(informational: no worker does not make the web process unhealthy, but nothing is
sent then)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from rq import Worker
from sqlalchemy import text
from werkzeug.wrappers import Response

from app.redisconn import describe

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    database = current_app.extensions["db"]
    body: dict[str, object] = {
        "database": {"backend": database.backend, "ok": False},
        "redis": {"where": describe(current_app.config["REDIS_URL_RESOLVED"]), "ok": False},
    }
    try:
        with database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        body["database"]["ok"] = True  # type: ignore[index]
    except Exception as exc:
        body["database"]["error"] = type(exc).__name__  # type: ignore[index]
    try:
        current_app.extensions["redis"].ping()
        body["redis"]["ok"] = True  # type: ignore[index]
        # Workers stay registered through a Redis restart (jobs/worker.py heartbeats).
        body["workers"] = Worker.count(connection=current_app.extensions["redis"])
    except Exception as exc:
        body["redis"]["error"] = type(exc).__name__  # type: ignore[index]
    ok = body["database"]["ok"] and body["redis"]["ok"]  # type: ignore[index]
    body["status"] = "ok" if ok else "unavailable"
    return jsonify(body), 200 if ok else 503
