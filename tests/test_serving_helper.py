"""The tests' live server stops whole: a loop left serving a keep-alive channel
after `server.close()` wrote waitress's wake-up byte into whatever socket reused the
closed trigger's descriptor (seen as Redis answering `unknown command x*8`)."""

from __future__ import annotations

import http.client
import threading

from tests.helpers import serving


def _app(environ: dict, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Length", "2"), ("Content-Type", "text/plain")])
    return [b"ok"]


def test_a_keep_alive_client_sees_the_server_go_and_no_loop_is_left() -> None:
    before = {t.ident for t in threading.enumerate()}
    with serving(_app, threads=2) as base:
        conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"  # the channel stays open (HTTP/1.1)
    conn.sock.settimeout(10)
    assert conn.sock.recv(1) == b""  # closed by the server, not left to a live loop
    conn.close()
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert left == []
