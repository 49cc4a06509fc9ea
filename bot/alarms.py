"""Alarm messages' buttons (Acknowledge, Open in web, Raise limit with its modal,
Stop task)
and `/sms alarms [AppID]`. The message itself is built by app/notify/slack.py
(the delivery job posts it); acknowledging updates it in place through a job."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.notify.slack import (
    ALARM_ACK,
    ALARM_OPEN,
    ALARM_RAISE,
    ALARM_RAISE_MODAL,
    ALARM_STOP_TASK,
    describe,
)
from app.queue import enqueue
from app.services import alarms
from app.services.context import Ctx
from app.services.errors import Conflict, ServiceError, ValidationError
from bot import blocks
from bot.context import NotLinked, acting, whole_number

log = logging.getLogger("smsops.slack")
RECENT = 10  # alarms listed by `/sms alarms`


def raise_modal(alarm_id: int, target: alarms.LimitTarget) -> dict[str, Any]:
    def number(block: str, label: str, value: int | None) -> blocks.Block:
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": block,
                                   "max_length": 12}
        if value is not None:
            element["initial_value"] = str(value)
        return {"type": "input", "block_id": block, "optional": True, "element": element,
                "label": {"type": "plain_text", "text": label}}

    where = f"to {target.country}" if target.country else f"({target.region})"
    return {
        "type": "modal", "callback_id": ALARM_RAISE_MODAL, "private_metadata": str(alarm_id),
        "title": {"type": "plain_text", "text": "Raise limit"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            blocks.section(f"Daily billed items {where} of "
                           f"*{blocks.escape(target.app_name)}* ({target.sdk_app_id}). "
                           "Blank means no threshold / no limit."),
            number("alarm_threshold", "Alarm threshold", target.alarm_threshold),
            number("daily_limit", "Daily limit", target.daily_limit),
        ],
    }


def alarms_command(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    """`/sms alarms [AppID]`: the recent alarms and whether someone acknowledged them."""
    if len(words) > 1 or (words and not words[0].isdigit()):
        from bot.commands import Usage  # the router imports this module

        raise Usage("Give one SDK AppID or nothing, e.g. /sms alarms 1400000001.", "alarms")
    filters = alarms.parse_filters(sdk_app_id=words[0] if words else "")
    rows, total = alarms.history(ctx, filters, page_size=RECENT)
    if not rows:
        return blocks.reply("No alarms" + (f" for {words[0]}." if words else "."))
    lines = []
    for a in rows:
        state = (f":white_check_mark: acknowledged by {blocks.escape(a.acknowledged_by or '?')}"
                 if a.acknowledged_at else ":warning: not acknowledged")
        where = f" ({a.figures.get('sdk_app_id')})" if (a.figures or {}).get("sdk_app_id") else ""
        lines.append(f"• #{a.id} {a.created_at:%Y-%m-%d %H:%M} UTC — "
                     f"{blocks.escape(alarms.EVENTS[a.event].label)}{where}: "
                     f"{blocks.escape(a.subject)} — {state}")
    more = f"\n…{total - len(rows)} more on <{ctx.settings.base_url}/alarms|the alarm history>" \
        if total > len(rows) else ""
    return blocks.reply(f"{total} alarm(s)", [blocks.section("\n".join(lines) + more)])


def register(bolt: App, flask_app: Flask) -> None:
    redis = flask_app.extensions["redis"]

    def tell(body: dict, text: str) -> None:
        channel = (body.get("channel") or {}).get("id") or body["user"]["id"]
        enqueue(redis, "jobs.slack.ephemeral", channel, body["user"]["id"], text)

    def refuse(body: dict, exc: Exception) -> None:
        tell(body, blocks.refusal(exc))

    @bolt.action(ALARM_OPEN)
    def open_web(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL itself

    @bolt.action(ALARM_ACK)
    def acknowledge(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        alarm_id = whole_number(body["actions"][0].get("value", ""))
        if alarm_id is None:
            tell(body, ":no_entry: This alarm message is not one of ours.")
            return
        try:  # the job updates every message carrying the alarm (acting enqueues it)
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                alarms.acknowledge(ctx, alarm_id)
        except (NotLinked, ServiceError) as exc:
            refuse(body, exc)

    @bolt.action(ALARM_RAISE)
    def raise_limit(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        alarm_id = whole_number(body["actions"][0].get("value", ""))
        if alarm_id is None:
            tell(body, ":no_entry: This alarm message is not one of ours.")
            return
        try:  # refused before the form for users who may not change limits
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                target = alarms.limit_target(ctx, alarm_id)
        except ValidationError as exc:
            refuse(body, ServiceError(" ".join(exc.errors.values())))
            return
        except (NotLinked, ServiceError) as exc:
            refuse(body, exc)
            return
        try:  # the trigger_id lives 3 s: this call cannot wait for a job
            client.views_open(trigger_id=body["trigger_id"], view=raise_modal(alarm_id, target))
        except SlackApiError as exc:
            log.warning("views.open failed: %s", describe(exc))
            tell(body, "Slack would not open the form; try again.")

    @bolt.action(re.compile(rf"^{ALARM_STOP_TASK}:\d+$"))
    def stop_task(ack: Ack, body: dict, client: WebClient) -> None:
        ack()  # Slack asked "Stop task #N?" before sending the click
        alarm_part, _, task_part = body["actions"][0].get("value", "").partition(":")
        alarm_id, task_id = whole_number(alarm_part), whole_number(task_part)
        if alarm_id is None or task_id is None:
            tell(body, ":no_entry: This alarm message is not one of ours.")
            return
        try:  # the job updates every message carrying the alarm (acting enqueues it)
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                alarms.stop_task(ctx, alarm_id, task_id)
        except (NotLinked, ServiceError) as exc:
            refuse(body, exc)
            if isinstance(exc, Conflict):  # ended meanwhile: show it instead of the button
                enqueue(redis, "jobs.alarms.refresh", alarm_id)

    @bolt.view(ALARM_RAISE_MODAL)
    def raise_submitted(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        alarm_id = whole_number(view.get("private_metadata") or "")
        values: dict[str, Any] = view["state"]["values"]

        def value(block: str) -> str:
            return (values.get(block, {}).get(block, {}).get("value") or "").strip()

        if alarm_id is None:
            ack(response_action="errors", errors={"daily_limit": "This form is out of date."})
            return
        try:
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                alarms.raise_limit(ctx, alarm_id, alarm_threshold=value("alarm_threshold"),
                                   daily_limit=value("daily_limit"))
        except ValidationError as exc:
            known = {"alarm_threshold", "daily_limit"}
            ack(response_action="errors", errors={
                (k if k in known else "daily_limit"): v[:150] for k, v in exc.errors.items()})
            return
        except (NotLinked, ServiceError) as exc:
            ack(response_action="errors",
                errors={"daily_limit": getattr(exc, "message", str(exc))[:150]})
            return
        ack()
