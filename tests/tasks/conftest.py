"""An application with effective content (the sending tests' shop)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from tests.conftest import Backend
from tests.sending.conftest import Shop, make_shop


@pytest.fixture
def shop(session: Session, backend: Backend) -> Shop:
    return make_shop(session, backend.redis)


def marketing_template(shop: Shop, session: Session) -> int:
    """An effective mainland marketing template with one variable."""
    from app.services import content, reviews
    from tests.helpers import ctx_for, make_user

    t = content.create_template(shop.ctx, "mainland", {
        "name": "night sale", "sms_type": "marketing", "content": "大促{1}折 回T退订"})
    reviewer = ctx_for(session, make_user(session, "night@example.com",
                                          presets=["SMSReviewer"]))
    reviews.approve(reviewer, "template", t.id, revision=t.revision)
    return t.id


def task_in_quiet_hours(shop: Shop, session: Session) -> int:
    """A confirmed marketing task of an account where it is night now (committed)."""
    import io

    from sqlalchemy import select

    from app.models import Account
    from app.services import tasks
    from tests.helpers import zone_at_hour

    # 23:00 there now: quiet hours hold the task till 08:00, with hours to spare.
    session.scalar(select(Account)).timezone = zone_at_hour(23)  # type: ignore[union-attr]
    task, _s = tasks.create_task(shop.ctx, tasks.Draft(shop.app.sdk_app_id,
                                                      marketing_template(shop, session)),
                                 io.BytesIO(b"13800138000,8\n"), "sale.csv")
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    session.commit()
    return task.id

