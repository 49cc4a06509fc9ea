"""`/sms …`: parse, call one service, answer with an ephemeral reply."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.notify.slack import describe
from app.services import apps, content, reviews
from app.services.context import Ctx
from app.services.errors import ServiceError
from app.sms.text import REGIONS
from bot import blocks
from bot.context import NotLinked, acting

log = logging.getLogger("smsops.slack")


class Usage(Exception):
    """The words after a sub-command are wrong; answer with that sub-command's help."""

    def __init__(self, problem: str, command: str) -> None:
        super().__init__(problem)
        self.command = command


def _region(words: list[str], command: str) -> str:
    region = words[0].lower() if words else "mainland"
    if region not in REGIONS:
        raise Usage(f"“{region}” is not a region: use mainland or international.", command)
    return region


def _apps(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    return blocks.apps_reply(apps.list_apps(ctx), ctx.settings.base_url)


def _app(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    if len(words) != 1 or not words[0].isdigit():
        raise Usage("Give one SDK AppID, e.g. `/sms app 1400000001`.", "app")
    return blocks.app_reply(apps.get_app(ctx, words[0]), ctx.settings.base_url)


def _templates(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    if words and words[0].isdigit():  # an AppID: content is account-wide, but check access
        apps.get_app(ctx, words[0])
        words = words[1:]
    region = _region(words, "templates")
    return blocks.templates_reply(content.list_templates(ctx, region), region,
                                  ctx.settings.base_url)


def _signatures(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    region = _region(words, "signatures")
    return blocks.signatures_reply(content.list_signatures(ctx, region), region,
                                   ctx.settings.base_url)


def _template(ctx: Ctx, words: list[str], body: dict, client: WebClient) -> dict[str, Any]:
    if not words or words[0].lower() != "new":
        raise Usage("Did you mean `/sms template new`?", "template")
    region = _region(words[1:], "template")
    ctx.actor.require("AddSmsTemplate")
    try:
        client.views_open(trigger_id=body["trigger_id"], view=blocks.template_modal(region))
    except SlackApiError as exc:
        log.warning("views.open failed: %s", describe(exc))
        return blocks.reply("Slack would not open the form; try again in a moment.")
    return {}


def _reviews(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    items = reviews.queue(ctx)
    if not items:
        return blocks.reply("Nothing is waiting for review.")
    out: list[blocks.Block] = []
    for item in items[: blocks.MAX_ITEMS // 2]:  # two blocks per item, 50 at most
        out.extend(blocks.review_blocks(item.kind, item.obj, item.title, item.facts,
                                        ctx.settings.base_url, buttons=True))
        out.append({"type": "divider"})
    if len(items) > blocks.MAX_ITEMS // 2:
        out.append(blocks.context(f"…and {len(items) - blocks.MAX_ITEMS // 2} more. "
                                  f"<{ctx.settings.base_url}/reviews|Open the review queue>"))
    return blocks.reply(f"{len(items)} item(s) waiting for review", out)


HANDLERS: dict[str, Callable[[Ctx, list[str], dict, WebClient], dict[str, Any]]] = {
    "apps": _apps, "app": _app, "templates": _templates, "signatures": _signatures,
    "template": _template, "reviews": _reviews,
}


def register(bolt: App, flask_app: Flask) -> None:
    @bolt.command("/sms")
    def sms(ack: Ack, body: dict, client: WebClient) -> None:
        words = (body.get("text") or "").split()
        sub = words[0].lower() if words else "help"
        if sub not in HANDLERS:
            problem = None if sub == "help" else f"Unknown command “{words[0][:40]}”."
            ack(**blocks.help_reply(problem))
            return
        try:
            with acting(flask_app, client, body["user_id"]) as ctx:
                answer = HANDLERS[sub](ctx, words[1:], body, client)
        except NotLinked as exc:
            answer = blocks.reply(str(exc))
        except Usage as exc:
            answer = blocks.help_reply(str(exc), only=exc.command)
        except ServiceError as exc:
            answer = blocks.reply(f":no_entry: {blocks.escape(exc.message)}")
        except Exception:
            log.exception("/sms %s failed", sub)
            answer = blocks.reply("Something went wrong on our side. It has been logged.")
        ack(**answer)
