"""The Bolt app, built once from the configuration; None when Slack is off."""

from __future__ import annotations

import logging

from flask import Flask
from slack_bolt import App

from app.notify.slack import web_client
from bot import alarms, approvals, commands, tasks

log = logging.getLogger("smsops.slack")


def build(flask_app: Flask) -> App | None:
    config = flask_app.config
    # Over HTTP the signing secret is required; Socket Mode needs the app token instead.
    if not config.get("SLACK_BOT_TOKEN") or not (
        config.get("SLACK_SIGNING_SECRET") or config.get("SLACK_APP_TOKEN")
    ):
        return None
    bolt = App(
        signing_secret=config.get("SLACK_SIGNING_SECRET") or "",
        client=web_client(config),  # carries the bot token and SMSOPS_SLACK_API_URL
        # Listeners ack and do only quick work, then hand slow work to RQ; running them
        # inside the request keeps one unit of work per interaction.
        process_before_response=True,
        token_verification_enabled=False,  # no Web API call at start-up
        logger=log,
    )
    commands.register(bolt, flask_app)
    approvals.register(bolt, flask_app)
    alarms.register(bolt, flask_app)
    tasks.register(bolt, flask_app)  # /sms tasks|task|stop|cancel and their buttons
    return bolt
