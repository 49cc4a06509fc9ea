"""Review results to alarm contacts in Slack: user text arrives escaped for mrkdwn,
so a template name cannot ping a channel or forge a link (issue #8)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.queue import enqueue_deferred
from app.services import app_config, content, reviews
from app.services.context import Settings
from tests.bot.conftest import Slack
from tests.helpers import ctx_for, make_app, make_user, root_ctx

SETTINGS = Settings(notify_channels=("email", "slack")).__dict__


def test_review_result_dm_escapes_user_text(slack: Slack, session: Session) -> None:
    sid = make_app(session)
    root = root_ctx(session, **SETTINGS)
    app_config.add_contact(root, sid, name="Ops", slack_user_id="U0ONCALL1", events=["review"])
    t = content.create_template(root, "international", {
        "name": "<!channel> <http://x.example|pay>", "sms_type": "notification",
        "content": "Order {1} shipped"})
    reviewer = ctx_for(session, make_user(session, "rev@example.com", presets=["SMSReviewer"]),
                       **SETTINGS)
    reviews.reject(reviewer, "template", t.id, "No <@U0BOSS001> & no links",
                   revision=reviews.load(reviewer, "template", t.id).revision)
    session.commit()
    enqueue_deferred(slack.app.extensions["redis"], [*root.deferred, *reviewer.deferred])
    slack.run_jobs()
    [dm] = [m for m in slack.api.named("chat.postMessage") if m["channel"] == "U0ONCALL1"]
    text = dm["text"]
    assert "<!channel>" not in text and "<http" not in text and "<@U0BOSS001>" not in text
    assert "&lt;!channel&gt; &lt;http://x.example|pay&gt;" in text
    assert "No &lt;@U0BOSS001&gt; &amp; no links" in text
