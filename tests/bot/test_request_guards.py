"""What /slack/events refuses before Bolt runs anything: found from outside."""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Message, User
from tests.bot.conftest import Slack, sign
from tests.sending.conftest import Shop

ROOT = "U0ROOT0001"


def test_a_replayed_slash_command_does_nothing(slack: Slack, shop: Shop,
                                               session: Session) -> None:
    """The same signed `/sms send` posted twice within Slack's five minutes sent the
    message twice: the signature was checked, the replay was not."""
    session.get(User, shop.ctx.actor.user_id).slack_user_id = ROOT  # type: ignore[union-attr]
    session.commit()
    body = urlencode({"command": "/sms", "user_id": ROOT, "channel_id": "CCMD0001",
                      "team_id": "T0TEAM001", "trigger_id": "1.2.3", "text":
                      f"send {shop.app.sdk_app_id} {shop.templates['international']} "
                      "+14155550101 4321"})
    headers = sign(body)
    first = slack.client.post("/slack/events", data=body, headers=headers)
    assert "Sent to +14155550101" in first.get_json()["text"]
    again = slack.client.post("/slack/events", data=body, headers=headers)
    assert again.status_code == 200 and not again.get_data()  # acknowledged, not run
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Message)) == 1
    # The same command signed anew (another request) runs.
    other = slack.client.post("/slack/events", data=body,
                              headers=sign(body, timestamp=int(headers[
                                  "X-Slack-Request-Timestamp"]) - 1))
    assert "Sent to" in other.get_json()["text"]


def test_a_timestamp_that_is_no_number_is_401_not_500(slack: Slack) -> None:
    body = urlencode({"command": "/sms", "text": "help", "user_id": ROOT})
    headers = sign(body)
    for bad in ("abc", "\u00b2", "", "9" * 40, "-5"):
        resp = slack.client.post("/slack/events", data=body,
                                 headers=dict(headers, **{"X-Slack-Request-Timestamp": bad}))
        assert resp.status_code == 401, (bad, resp.status_code)
