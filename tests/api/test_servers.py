"""The send API behind the production servers, over real HTTP: gunicorn (gthread, as
README's Production says) and granian (the faster one bench/README.md measured).
Signed requests pass through both — granian passes no raw request target, so the
one rebuilt from PATH_INFO and QUERY_STRING must be what clients sign — and the
send endpoint answers from app/api/fastpath.py there as in the test client."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.api.test_send_api import signed
from tests.conftest import Backend
from tests.sending.conftest import make_shop

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(server: str, port: int) -> list[str]:
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", "1",
                "--blocking-threads", "4", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "wsgi:app"]
    return [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", "4",
            "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"]


@pytest.fixture(params=["gunicorn", "granian"])
def served(request: pytest.FixtureRequest, backend: Backend, session: Session,
           tmp_path: Path) -> Iterator[tuple[int, object]]:
    if backend.name != "postgresql":
        pytest.skip("one backend is enough: this is about the HTTP servers")
    shop = make_shop(session, backend.redis)
    session.commit()
    port = _free_port()
    env = {**os.environ, "SMSOPS_DATABASE_URL": backend.db.url,
           "SMSOPS_REDIS_URL": backend.redis_url, "SMSOPS_INSTANCE_DIR": str(tmp_path),
           "SMSOPS_SECRET_KEY": "x", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(_command(request.param, port), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() \
                if proc.poll() is not None else "server did not start"
            time.sleep(0.05)
    yield port, shop
    proc.terminate()
    proc.wait(30)


def _request(port: int, method: str, target: str, key: str, app_id: str,
             body: bytes = b"", **extra: str) -> tuple[int, dict]:
    headers = signed(key, body, method=method, target=target) | {"X-SMS-AppId": app_id,
                                                                  **extra}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, target, body=body or None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data)


def test_signed_requests_pass_through_the_server(served: tuple[int, object]) -> None:
    port, shop = served
    key, app_id = shop.app.app_key, shop.app.sdk_app_id  # type: ignore[attr-defined]
    body = json.dumps({"phone_numbers": ["+14155550101"],
                       "template_id": shop.templates["international"],  # type: ignore[attr-defined]
                       "template_params": ["4321"]}).encode()
    status, answer = _request(port, "POST", "/api/v1/sms/send", key, app_id, body)
    assert status == 200, answer
    [sent] = answer["send_status"]
    assert sent["code"] == "Ok"
    # Through Flask, with a query string: the target the server rebuilds is the signed one.
    status, answer = _request(port, "GET", f"/api/v1/sms/messages/{sent['serial_no']}?v=1",
                              key, app_id)
    assert status == 200 and answer["serial_no"] == sent["serial_no"], answer
    status, answer = _request(port, "POST", "/api/v1/sms/send", "wrong-key", app_id, body)
    assert (status, answer["error"]["code"]) == (401, "AuthFailure.SignatureFailure")
    # A byte the signature cannot hold (gunicorn gives 0xE9 as 'é'; granian drops the
    # header): refused as unsigned, not a 500.
    status, answer = _request(port, "POST", "/api/v1/sms/send", key, app_id, body,
                              **{"X-SMS-Signature": "\u00e9" * 64})
    assert status == 401 and answer["error"]["code"].startswith("AuthFailure."), answer


def test_a_malformed_chunked_body_is_a_4xx(served: tuple[int, object]) -> None:
    """gunicorn raises its own parse errors (not OSError) from the body's read when a
    chunk size is not hex: the Flask route answered 500 and logged a stack trace, for
    anyone (the body is read before the signature is checked). granian passes what it
    could read, which the signature then refuses."""
    port, shop = served
    key, app_id = shop.app.app_key, shop.app.sdk_app_id  # type: ignore[attr-defined]
    for size in (b"zz", b"-5"):
        headers = signed(key, b"{}") | {"X-SMS-AppId": app_id}
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(f"POST /api/v1/sms/send HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                      f"{head}Transfer-Encoding: chunked\r\n\r\n".encode()
                      + size + b"\r\n{}\r\n0\r\n\r\n")
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"], answer
