"""`/sms groups` in Slack."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import User
from app.services import audience
from tests.bot.conftest import Slack
from tests.helpers import root_ctx


def test_slack_lists_groups_with_counts(slack: Slack, session: Session) -> None:
    c = root_ctx(session)
    audience.add_typed(c, text="13800138000\n13900139000", new_name="*VIP* <!here>",
                       sms_type="marketing")
    session.get(User, c.actor.user_id).slack_user_id = "U0ROOT0001"
    session.commit()
    text = slack.command("groups", user="U0ROOT0001").get_json()["text"]
    assert "1 customer group:" in text and "2 numbers" in text
    assert "<!here>" not in text and "&lt;!here&gt;" in text
