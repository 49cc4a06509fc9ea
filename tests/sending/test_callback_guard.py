"""SSRF guard for status and reply callbacks: one lookup, only public addresses,
and the connection goes to the address that was checked.

Names resolve through a resolver the test controls (config CALLBACK_RESOLVER);
no test sends anything beyond loopback: where a connection to a public address
would be made, a recording connector stands in at the socket and refuses it."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from flask import Flask
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.models import Account, CallbackAttempt
from app.services import accounts, app_config, netguard
from app.services.errors import ValidationError
from jobs.callbacks import deliver
from tests.conftest import Backend
from tests.helpers import root_ctx
from tests.sending.conftest import Shop
from tests.sending.test_pipeline import Receiver, _run

PUBLIC = "93.184.216.34"  # never contacted: see the recording connector


def names(table: dict[str, list[str]], calls: list[str] | None = None) -> netguard.Resolver:
    """A resolver answering from `table`; anything else fails like an unknown name."""

    def resolve(host: str, _port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]
    return resolve


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.5", "169.254.169.254",
    "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
    "100.64.0.1",        # carrier-grade NAT
    "198.18.0.1",        # benchmarking
    "192.0.2.10",        # documentation
    "224.0.0.1", "240.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fc00::1", "ff0e::1",
    "fec0::1",           # site-local
    "2002:7f00:1::1",    # 6to4 around 127.0.0.1
    "64:ff9b::7f00:1",   # NAT64 around 127.0.0.1
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::127.0.0.1",       # IPv4-compatible
    "2001:db8::1",
])
def test_every_special_range_is_refused(address: str) -> None:
    resolver = names({"cb.example.test": [address]})
    reason = netguard.check_callback_url("https://cb.example.test/r", resolver=resolver)
    assert reason is not None and "private" in reason
    host = f"[{address}]" if ":" in address else address
    assert netguard.check_callback_url(f"http://{host}/r") is not None  # as a literal too
    assert netguard.check_callback_url("https://cb.example.test/r", allow_private=True,
                                       resolver=resolver) is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/caf\u00e9", "http://127.0.0.1:8080/a b",
                                 "http://127.0.0.1:0/", "http://127.0.0.1:8080/a\tb"])
def test_urls_no_request_can_be_made_to_are_refused(url: str) -> None:
    """Found from outside: a path with a non-ASCII character or a space, or port 0, was
    saved; every delivery then failed (a UnicodeEncodeError escaped the attempt log)."""
    assert netguard.check_callback_url(url, allow_private=True) is not None
    with pytest.raises(netguard.Refused):
        netguard.resolve_callback(url, allow_private=True)  # at delivery too
    assert netguard.check_callback_url("http://127.0.0.1:8080/caf%C3%A9?a=b%20c",
                                       allow_private=True) is None


def test_one_private_answer_among_public_ones_is_refused() -> None:
    resolver = names({"cb.example.test": [PUBLIC, "2606:4700::1", "127.0.0.1"]})
    assert netguard.check_callback_url("https://cb.example.test/", resolver=resolver)
    resolver = names({"cb.example.test": [PUBLIC, "2606:4700::1"]})
    assert netguard.check_callback_url("https://cb.example.test/", resolver=resolver) is None


def test_a_failed_lookup_is_refused_when_saving(session: Session) -> None:
    from tests.helpers import make_app

    sid = make_app(session)
    ctx = root_ctx(session, callback_resolver=names({}))
    with pytest.raises(ValidationError, match="could not be resolved"):
        app_config.set_callback(ctx, sid, "https://nowhere.example.test/r")
    with pytest.raises(ValidationError, match="could not be resolved"):
        accounts.update_settings(ctx, account_type="enterprise", timezone="Asia/Shanghai",
                                 intl_daily_quota=100, reply_callback_enabled=True,
                                 reply_callback_url="https://nowhere.example.test/replies")
    ok = root_ctx(session, callback_resolver=names({"cb.example.test": [PUBLIC]}))
    assert app_config.set_callback(ok, sid, "https://cb.example.test/r").status_callback_url


def test_a_name_rebound_to_loopback_after_the_check_never_reaches_it() -> None:
    """Public at the check, 127.0.0.1 on any later lookup: the one connection goes to
    the checked public address (refused here at the socket), never to loopback."""
    receiver = Receiver()
    port = receiver.server.server_port
    calls: list[str] = []

    def rebinding(host: str, _port: int) -> list[str]:
        calls.append(host)
        return [PUBLIC] if len(calls) == 1 else ["127.0.0.1"]

    dialled: list[tuple[str, int]] = []

    def connect(address: tuple[str, int], _timeout: float) -> socket.socket:
        dialled.append(address)
        raise ConnectionRefusedError("not leaving loopback in a test")

    with pytest.raises(ConnectionRefusedError):
        deliver(f"http://rebind.example.test:{port}/receipts", b"{}", {},
                allow_private=False, resolver=rebinding, connect=connect)
    assert calls == ["rebind.example.test"]  # resolved once
    assert dialled == [(PUBLIC, port)]
    assert receiver.requests == []
    receiver.server.shutdown()


@pytest.fixture
def runner(backend: Backend, session: Session, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SIMULATOR_RECEIPT_DELAY_S": 0, "ALLOW_PRIVATE_CALLBACKS": True})
    yield app
    app.extensions["db"].engine.dispose()


@pytest.fixture
def guarded(shop: Shop, session: Session, runner: Flask) -> Flask:
    runner.config["ALLOW_PRIVATE_CALLBACKS"] = False
    runner.config["CALLBACK_RESOLVER"] = names({"loop.example.test": ["127.0.0.1"]})
    return runner


@pytest.mark.parametrize("kind", ["status", "reply"])
def test_a_name_resolving_to_loopback_is_refused_at_delivery(
    shop: Shop, session: Session, guarded: Flask, kind: str
) -> None:
    from app.services import replies

    receiver = Receiver()
    url = f"http://loop.example.test:{receiver.server.server_port}/cb"
    if kind == "status":
        shop.app.status_callback_url = url  # saved when it resolved elsewhere
    else:
        account = session.get(Account, shop.app.account_id)
        account.reply_callback_url, account.reply_callback_enabled = url, True
    shop.send(["+14155550101"])
    _run(shop, session, guarded)
    if kind == "reply":
        shop.ctx.deferred.clear()
        replies.receive(shop.ctx, "+14155550101", "hello")
        _run(shop, session, guarded)
    assert receiver.requests == []
    attempt = session.scalar(select(CallbackAttempt).where(CallbackAttempt.kind == kind))
    assert attempt.status_code is None
    assert attempt.error.startswith("refused: loop.example.test is a private")
    queue = Queue("default", connection=guarded.extensions["redis"])
    assert queue.scheduled_job_registry.get_job_ids() == []  # refused: not retried
    receiver.server.shutdown()


def test_a_failed_lookup_at_delivery_is_logged_and_retried(
    shop: Shop, session: Session, guarded: Flask
) -> None:
    shop.app.status_callback_url = "https://gone.example.test/cb"
    shop.send(["+14155550101"])
    _run(shop, session, guarded)
    attempt = session.scalar(select(CallbackAttempt))
    assert attempt.status_code is None and "could not be resolved" in attempt.error
    queue = Queue("default", connection=guarded.extensions["redis"])
    assert len(queue.scheduled_job_registry.get_job_ids()) == 1


class TlsReceiver:
    """An https callback endpoint on loopback with a certificate for `name` from a
    throwaway CA; records the TLS server name and the requests."""

    def __init__(self, ca: trustme.CA, name: str) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.server_names: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(context)
        context.sni_callback = lambda _sock, sni, _ctx: outer.server_names.append(sni)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def tls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TlsReceiver]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    # ssl.create_default_context() reads it: the client trusts only the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    receiver = TlsReceiver(ca, "hooks.example.test")
    yield receiver
    receiver.server.shutdown()


def test_https_callback_keeps_the_name_for_host_sni_and_certificate(
    shop: Shop, session: Session, runner: Flask, tls: TlsReceiver
) -> None:
    runner.config["CALLBACK_RESOLVER"] = names({"hooks.example.test": ["127.0.0.1"]})
    shop.app.status_callback_url = f"https://hooks.example.test:{tls.port}/receipts?v=2"
    [r] = shop.send(["+14155550101"])
    _run(shop, session, runner)
    [(headers, body)] = tls.requests
    assert tls.server_names == ["hooks.example.test"]
    assert headers["host"] == f"hooks.example.test:{tls.port}"
    signed = headers["x-sms-timestamp"].encode() + b"\n" + body
    assert headers["x-sms-signature"] == hmac.new(
        shop.app.app_key.encode(), signed, hashlib.sha256).hexdigest()
    assert json.loads(body)["serial_no"] == r.serial_no
    attempt = session.scalar(select(CallbackAttempt))
    assert (attempt.status_code, attempt.error) == (200, None)


def test_https_certificate_is_checked_against_the_url_host(tls: TlsReceiver) -> None:
    resolver = names({"other.example.test": ["127.0.0.1"]})
    with pytest.raises(ssl.SSLCertVerificationError):
        deliver(f"https://other.example.test:{tls.port}/r", b"{}", {}, allow_private=True,
                resolver=resolver)
    assert tls.requests == []
