"""Issue #14: no stale or broken page after an htmx action (the server side)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Message, SendTask
from app.models.sending import DELIVERED, SUBMITTED
from app.services import audience, rollups, tasks
from tests.helpers import root_ctx
from tests.sending.conftest import Shop
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


def test_a_task_page_keeps_asking_until_the_receipts_are_in(root: Client, shop: Shop,
                                                            session: Session) -> None:
    """Receipts land after a task has sent everything: its figures, records and receipt
    analysis must not freeze at "sent"."""
    task, _s = tasks.create_task(shop.ctx, tasks.Draft(
        shop.app.sdk_app_id, shop.templates["mainland"], name="Spring"),
        io.BytesIO(b"13800138000,1234\n13800138001,1234\n"), "list.csv")
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    tasks.dispatch_step(shop.ctx, shop.limiter, task.id)
    shop.ctx.deferred.clear()
    session.execute(update(Message).values(status=SUBMITTED, submitted_at=utcnow()))
    session.execute(update(SendTask).values(status="sent", finished_at=utcnow()))
    rollups.rebuild(session)  # moved by hand: the figures counted again
    session.commit()
    detail = soup(root.get(f"/tasks/{task.id}"))
    parts = {}
    for part in ("#task-records", "#receipts"):  # they ask again while receipts are due
        node = detail.select_one(part)
        assert node is not None and str(node.get("hx-trigger")).startswith("every "), part
        parts[part] = str(node["hx-get"])
    poller = soup(root.get(f"/tasks/{task.id}/progress", htmx=True)).select_one("#task-progress")
    assert poller is not None and "every" in str(poller.get("hx-trigger"))  # 2 await receipts
    session.execute(update(Message).values(status=DELIVERED, receipt_at=utcnow()))
    rollups.rebuild(session)
    session.commit()
    done = soup(root.get(f"/tasks/{task.id}/progress", htmx=True)).select_one("#task-progress")
    assert done is not None and not done.get("hx-trigger")  # nothing left to wait for
    receipts = soup(root.get(parts["#receipts"], htmx=True)).select_one("#receipts")
    assert receipts is not None and not receipts.get("hx-trigger")
    assert receipts.select_one("[data-figure=delivered]").get_text() == "2"  # type: ignore[union-attr]
    records = soup(root.get(parts["#task-records"], htmx=True)).select_one("#task-records")
    assert records is not None and not records.get("hx-trigger")
    assert [s.get_text() for s in records.select(".status")] == ["delivered", "delivered"]
