"""Page numbers come from the address bar: any value is a page, never a 500."""

from __future__ import annotations

from tests.web.conftest import Client


def test_any_page_number_answers(root: Client) -> None:
    for url in ("/notifications", "/audit", "/messages"):
        for number in ("99999999999999999999", "9223372036854775807", "²", "-1", "0", "1e9",
                       ""):
            resp = root.get(f"{url}?page={number}")
            assert resp.status_code == 200, (url, number, resp.status_code)
