"""An application with effective content to send with, helpers to send, and the
jobs' app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app import create_app
from app.models import Application
from app.services import app_config, apps, content, reviews, sending
from app.services.context import Ctx
from app.services.limits import Limiter
from jobs import runtime
from tests.conftest import Backend
from tests.helpers import QUALIFICATION, ctx_for, make_user, root_ctx


@dataclass
class Shop:
    ctx: Ctx  # the root user
    app: Application
    limiter: Limiter
    templates: dict[str, int]  # mainland / international / marketing / intl2 → id
    signatures: dict[str, int]

    def send(self, numbers: list[str], template: str = "international",
             params: list[str] | None = None, **kw: Any) -> list[sending.SendStatus]:
        req = sending.SendRequest(numbers, self.templates[template],
                                  params if params is not None else ["123456"], **kw)
        return sending.send(self.ctx, self.limiter, self.app.sdk_app_id, req)[1]

    def codes(self, numbers: list[str], **kw: Any) -> list[str]:
        return [r.code for r in self.send(numbers, **kw)]


@pytest.fixture
def shop(session: Session, backend: Backend) -> Shop:
    return make_shop(session, backend.redis)


def make_shop(session: Session, redis_conn: Any) -> Shop:
    """An application with approved content (also used by the fault tests)."""
    root = root_ctx(session)
    reviewer = ctx_for(session, make_user(session, "rev@example.com", presets=["SMSReviewer"]))
    app, _key = apps.create_app(root, name="Shop")
    # Off by default, so each test turns on the limit it is about.
    app_config.set_frequency(root, app.sdk_app_id, {"30s": (False, 1), "hour": (False, 5),
                                                    "day": (False, 10)})
    q = content.create_qualification(root, dict(QUALIFICATION))
    reviews.approve(reviewer, "qualification", q.id, revision=q.revision)
    sigs, temps = {}, {}
    for region in ("mainland", "international"):
        s = content.create_signature(root, region, {"purpose": "self", "qualification_id": q.id,
                                                    "sign_type": "company", "content": "Shop"})
        reviews.approve(reviewer, "signature", s.id, revision=s.revision)
        sigs[region] = s.id
    for key, region, sms_type, text in (
        ("mainland", "mainland", "verification", "您的验证码为{1}"),
        ("international", "international", "verification", "Your code is {1}"),
        ("marketing", "international", "marketing", "Sale {1}! Reply STOP to opt out"),
        ("pending", "international", "notification", "Order {1} shipped"),
    ):
        t = content.create_template(root, region, {"name": key, "sms_type": sms_type,
                                                   "content": text})
        if key != "pending":
            reviews.approve(reviewer, "template", t.id, revision=t.revision)
        temps[key] = t.id
    root.deferred.clear()
    session.flush()
    return Shop(root, app, Limiter(redis_conn), temps, sigs)


# The jobs in process on this backend, with the simulator's on-disk ledger (the
# carrier's own record of what it took). Files that need other settings override it.
@pytest.fixture
def runner(backend: Backend, session: Session, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SIMULATOR_RECEIPT_DELAY_S": 0,
                      "SIMULATOR_LEDGER": str(tmp_path / "carrier.db")})
    runtime.use(app)
    yield app
    app.extensions["db"].engine.dispose()
