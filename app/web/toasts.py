"""Flashes become toasts: rendered by base.html on a full page, and sent to the page as
an htmx event (HX-Trigger) when an htmx request answers with a fragment, so a message
flashed there shows at once instead of surfacing on some later page.

app.js turns the event into the same toast markup as base.html's."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, request, session
from werkzeug.wrappers import Response

EVENT = "smsops-toast"  # the htmx event app.js listens for
ERROR = "error"  # the flash category of a failure; anything else is a notice
# The browser follows these to a full page, which renders the flashes itself.
NAVIGATING = ("HX-Redirect", "HX-Location", "HX-Refresh")


def kind(category: str) -> str:
    return "error" if category == ERROR else "notice"


def _triggers(value: str) -> dict[str, Any]:
    """An HX-Trigger header as a dict (it may be JSON or a list of event names)."""
    if value.lstrip().startswith("{"):
        parsed = json.loads(value)
        return parsed if isinstance(parsed, dict) else {}
    return {name.strip(): None for name in value.split(",") if name.strip()}


def register(app: Flask) -> None:
    from app.web import wants_fragment

    app.add_template_global(kind, "toast_kind")
    app.add_template_global(wants_fragment)

    @app.after_request
    def _flashes_to_htmx(resp: Response) -> Response:
        if (not request.htmx  # type: ignore[attr-defined]
                or resp.status_code in (301, 302, 303, 307, 308)
                or any(h in resp.headers for h in NAVIGATING)
                or "_flashes" not in session):  # none, or a full page showed them
            return resp
        flashes = session.pop("_flashes")
        triggers = _triggers(resp.headers.get("HX-Trigger", ""))
        triggers[EVENT] = {"toasts": [{"kind": kind(c), "text": str(m)} for c, m in flashes]}
        # ASCII only (a header): JSON escapes every other character.
        resp.headers["HX-Trigger"] = json.dumps(triggers, ensure_ascii=True)
        return resp
