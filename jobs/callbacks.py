"""POSTing receipts and replies to callback URLs: signed, SSRF-checked, retried."""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
from collections.abc import Callable, Mapping

from sqlalchemy.orm import Session

from app.models import Application
from app.services import callbacks, netguard
from jobs import runtime

log = logging.getLogger("smsops.callbacks")

# (ip, port), timeout -> a connected socket; socket.create_connection unless a test
# must see where a connection would go without sending anything outside.
Connector = Callable[[tuple[str, int], float], socket.socket]


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


def _default_connect(address: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(address, timeout)


class _PinnedConnection(http.client.HTTPConnection):
    """http(s) to `target.host` whose socket goes only to the checked addresses: the
    Host header and, for https, the TLS server name (SNI and certificate check) stay
    the URL's host. Never follows redirects (http.client does not)."""

    def __init__(self, target: netguard.Target, connect: Connector, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.tls = ssl.create_default_context() if target.scheme == "https" else None
        self.default_port = 443 if self.tls else 80  # Host gets ":port" only when not this
        self.target, self.open_socket = target, connect

    def connect(self) -> None:
        error: OSError = OSError(f"no address for {self.target.host}")
        for ip in self.target.addresses:
            try:
                sock = self.open_socket((str(ip), self.target.port), float(self.timeout or 10))
                break
            except OSError as exc:
                error = exc
        else:
            raise error
        if self.tls is None:
            self.sock = sock
            return
        try:
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.target.host)
        except BaseException:
            sock.close()
            raise


def deliver(url: str, body: bytes, headers: Mapping[str, str], *, allow_private: bool,
            resolver: netguard.Resolver, connect: Connector = _default_connect,
            timeout: float = 10.0) -> int:
    """POST `body` to `url` and return the HTTP status. The host is resolved once and
    the connection goes only to the addresses that passed the check. Raises
    netguard.Refused, OSError (ssl errors included) or http.client.HTTPException."""
    target = netguard.resolve_callback(url, allow_private, resolver)
    conn = _PinnedConnection(target, connect, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=dict(headers))
        return conn.getresponse().status
    finally:
        conn.close()


def _post(session: Session, app: Application, kind: str, ref: int, url: str,
          body: bytes) -> None:
    """One signed POST, logged; raises so RQ retries it later when it failed."""
    config = runtime.app().config
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "smsops-callback/1",
        "X-SMS-AppId": app.sdk_app_id,
        "X-SMS-Timestamp": ts,
        "X-SMS-Signature": callbacks.sign(app.app_key, ts, body),
    }
    code: int | None = None
    error: str | None = None
    try:
        # Checked again now: DNS may have changed since the URL was saved.
        code = deliver(url, body, headers,
                       allow_private=bool(config.get("ALLOW_PRIVATE_CALLBACKS")),
                       resolver=netguard.resolver_from(config))
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except netguard.Refused as exc:
        if not exc.retry:
            callbacks.record_attempt(session, app, kind, ref, url, body, None,
                                     f"refused: {exc.reason}")
            return  # not retried: it would be refused again
        error = exc.reason  # a failed lookup: maybe better later
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"
    attempt = callbacks.record_attempt(session, app, kind, ref, url, body, code, error)
    if error is not None:
        session.commit()  # keep the record of this attempt, then fail the job
        where = netguard.for_log(url)
        log.warning("%s callback %s (%s) failed, try %s: %s", kind, where, ref, attempt, error)
        raise CallbackFailed(f"{where}: {error}")
