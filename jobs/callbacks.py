"""POSTing receipts to status callback URLs: signed, SSRF-checked, retried."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request

from sqlalchemy.orm import Session

from app.models import Application
from app.services import callbacks
from app.services.netguard import check_callback_url
from jobs import runtime

log = logging.getLogger("smsops.callbacks")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could point at a private address after the check: never follow one."""

    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


_opener = urllib.request.build_opener(_NoRedirect)


class CallbackFailed(Exception):
    """Raised so RQ tries again later (see app/queue.py for the back-off)."""


def status(message_id: int) -> None:
    with runtime.unit_of_work() as session:
        found = callbacks.status_payload(session, message_id)
        if found is not None:
            app, body = found
            _post(session, app, "status", message_id, app.status_callback_url or "", body)


def reply(reply_id: int) -> None:
    with runtime.unit_of_work() as session:
        found = callbacks.reply_payload(session, reply_id)
        if found is not None:
            app, url, body = found
            _post(session, app, "reply", reply_id, url, body)


def _post(session: Session, app: Application, kind: str, ref: int, url: str,
          body: bytes) -> None:
    """One signed POST, logged; raises so RQ retries it later when it failed."""
    config = runtime.app().config
    # Checked again now: DNS may have changed since the URL was saved.
    problem = check_callback_url(url, bool(config.get("ALLOW_PRIVATE_CALLBACKS")))
    if problem:
        callbacks.record_attempt(session, app, kind, ref, url, body, None,
                                 f"refused: {problem}")
        return  # not retried: it would be refused again
    # The scheme is http(s): checked just above.
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "smsops-callback/1",
        "X-SMS-AppId": app.sdk_app_id,
        "X-SMS-Timestamp": str(int(time.time())),
        "X-SMS-Signature": callbacks.sign(app.app_key, body),
    })
    code: int | None = None
    error: str | None = None
    try:
        with _opener.open(request, timeout=10) as resp:
            code = resp.status
    except urllib.error.HTTPError as exc:
        code, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    attempt = callbacks.record_attempt(session, app, kind, ref, url, body, code, error)
    if code is None or not 200 <= code < 300:
        session.commit()  # keep the record of this attempt, then fail the job
        log.warning("%s callback %s (%s) failed, try %s: %s", kind, url, ref, attempt, error)
        raise CallbackFailed(f"{url}: {error or code}")
