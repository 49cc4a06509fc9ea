"""POST /api/v1/sms/send answered without Flask.

The endpoint carries the product's heaviest traffic (one-number verification codes),
and Flask's request machinery — the request context, routing, the console's hooks
and the response object — was about a third of such a request's CPU. This WSGI
layer in front of the Flask app takes exactly that path and method when the body has
a Content-Length within the limit, and runs the same code as the Flask route
(`send_core`, `answer_for`), so the answers are the same byte for byte; anything
else (a chunked body, an oversized one, any other path) goes to Flask untouched.

In front of every API path, it also refuses (400) a method or request target that the
servers smsops runs under would not read alike (`target_problem`, app/api/__init__.py),
before routing: gunicorn and waitress refuse some of these themselves, granian passes
them on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import HTTP_STATUS_CODES

from app.api import (
    REPLAYED_HEADER,
    ApiError,
    answer_for,
    bp,
    is_api_target,
    send_core,
    target_problem,
)
from app.web import SECURITY_HEADERS

PATH = f"{bp.url_prefix}/sms/send"
HEADERS = [(name, value) for _lower, name, value in SECURITY_HEADERS] + [
    ("Cache-Control", "no-store")]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SendFastPath:
    def __init__(self, flask_app: Any, inner: WSGIApp) -> None:
        self.flask_app, self.inner = flask_app, inner

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        if is_api_target(environ):
            problem = target_problem(environ)
            if problem is not None:
                return self._answer(start_response, problem.status, {"error": {
                    "code": problem.code, "message": problem.message}})
        length = environ.get("CONTENT_LENGTH") or ""
        if (environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST"
                or environ.get("SCRIPT_NAME") or len(length) > 15 or not length.isascii()
                or not length.isdigit()
                or int(length) > int(self.flask_app.config.get("API_MAX_BODY_BYTES")
                                     or 1024 * 1024)):
            return self.inner(environ, start_response)
        size = int(length)

        def read_body() -> bytes:
            try:
                data = environ["wsgi.input"].read(size) if size else b""
            except Exception:  # unreadable (the client went away): as Flask's route answers
                raise ClientDisconnected() from None
            if len(data) != size:
                raise ApiError(400, "InvalidRequest",
                               "The request body ended before its Content-Length.")
            return data

        status, replayed = 200, False
        try:
            payload, replayed = send_core(self.flask_app, environ, read_body)
        except Exception as exc:  # every answer is JSON, as the Flask route's handlers give
            status, code, message = answer_for(exc, self.flask_app.logger, PATH)
            payload = {"error": {"code": code, "message": message}}
        return self._answer(start_response, status, payload,
                            [REPLAYED_HEADER] if replayed else [])

    @staticmethod
    def _answer(start_response: Callable[..., Any], status: int,
                payload: dict[str, Any], more: list[tuple[str, str]] | None = None
                ) -> Iterable[bytes]:
        # What Flask's jsonify writes outside debug mode: sorted keys, compact, ASCII.
        body = (json.dumps(payload, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
                + "\n").encode()
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}",
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))), *HEADERS, *(more or [])])
        return [body]
