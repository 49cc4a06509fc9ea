"""Issue #14: no stale or broken page after an htmx action (the server side)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from app.services import audience
from tests.helpers import root_ctx
from tests.web.conftest import Client, soup


@pytest.mark.parametrize("header", ["HX-Boosted", "HX-History-Restore-Request"])
def test_boosted_and_history_requests_get_the_whole_page(root: Client, session: Session,
                                                         header: str) -> None:
    """A boosted form's redirect and the back button (a history cache miss) swap the
    whole body: a fragment there would leave a page without its navigation."""
    group = audience.create_group(root_ctx(session), name="Fans", sms_type="marketing")
    session.commit()
    for url in (f"/groups/{group.id}", "/groups", "/tasks", "/alarms", "/"):
        resp = root.http.get(url, headers={"HX-Request": "true", header: "true"})
        assert resp.status_code == 200, url
        assert soup(resp).select_one("#sidenav") is not None, url
        assert soup(resp).select_one("title") is not None, url
    # A plain htmx request still gets the fragment.
    fragment = root.get(f"/groups/{group.id}", htmx=True)
    assert soup(fragment).select_one("#sidenav") is None
