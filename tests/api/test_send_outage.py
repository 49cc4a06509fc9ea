"""A request whose rows committed is never answered with a 5xx: a failed wake-up
after the commit is left to the sweeper."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Message
from app.queue import wake_key
from jobs import runtime
from jobs.sending import sweep_once
from tests.api.test_send_api import Caller
from tests.conftest import Backend
from tests.sending.conftest import Shop


@pytest.fixture
def client(api: Flask, shop: Shop, session: Session) -> Caller:
    session.commit()
    return Caller(api.test_client(), shop)


def test_enqueue_failing_after_the_commit_still_answers_200(
    client: Caller, api: Flask, backend: Backend, session: Session
) -> None:
    caller = client
    # A real Redis error on enqueue: the queue's key holds the wrong type.
    backend.redis.set("rq:queue:pipeline", "not a list")
    resp = caller.send({"phone_numbers": ["+14155550101"],
                        "template_id": caller.shop.templates["international"],
                        "template_params": ["1234"]})
    assert resp.status_code == 200
    assert resp.get_json()["send_status"][0]["code"] == "Ok"
    assert session.scalar(select(Message.status)) == "accepted"
    assert backend.redis.get(wake_key("jobs.sending.drain")) is None  # nothing pending

    backend.redis.delete("rq:queue:pipeline")
    runtime.use(api)
    api.config["REDRIVE_AFTER_S"] = 0
    assert sweep_once(api).redrive  # the sweeper finds the row and wakes the drainer
    assert backend.redis.llen("rq:queue:pipeline") == 1


def test_redis_unreachable_is_503_to_retry_not_500(backend: Backend, shop: Shop,
                                                   session: Session, tmp_path: object) -> None:
    """Found from outside: with Redis unreachable a valid send answered 500 and logged a
    stack trace; nothing was written, which is what 503 InternalError.Unavailable says."""
    from app import create_app

    session.commit()
    down = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": "redis://127.0.0.1:1/0",
                       "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x"})
    try:
        resp = Caller(down.test_client(), shop).send({
            "phone_numbers": ["+14155550101"], "template_id": shop.templates["international"],
            "template_params": ["1234"]})
        assert resp.status_code == 503, resp.get_data(as_text=True)
        assert resp.get_json()["error"]["code"] == "InternalError.Unavailable"
        assert session.scalar(select(Message.id)) is None
    finally:
        down.extensions["db"].engine.dispose()
