"""`/sms …`: parse, call one service, answer with an ephemeral reply."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.notify.slack import describe
from app.services import (
    apps,
    audience,
    content,
    mute,
    reviews,
    sending,
    slack_link,
    unsubscribes,
)
from app.services.context import Ctx, Settings
from app.services.errors import ServiceError
from app.services.limits import Limiter
from app.sms import errors, templating
from app.sms.text import REGIONS
from bot import blocks
from bot.alarms import alarms_command
from bot.context import NotLinked, acting, whole_number

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
    shown = 0
    for item in items[:blocks.MAX_ITEMS]:
        more = [*blocks.review_blocks(item.kind, item.obj, item.title, item.facts,
                                      ctx.settings.base_url, buttons=True), {"type": "divider"}]
        if len(out) + len(more) > MAX_BLOCKS - 1:  # room for the line below
            break
        out += more
        shown += 1
    if len(items) > shown:
        out.append(blocks.context(f"…and {len(items) - shown} more. "
                                  f"<{ctx.settings.base_url}/reviews|Open the review queue>"))
    return blocks.reply(f"{len(items)} item(s) waiting for review", out)


MAX_BLOCKS = 50  # Block Kit's limit for a message
RECEIPT_KEY = "smsops:slack:receipt:{}"  # message id → the response_url to update


def _send(ctx: Ctx, words: list[str], body: dict, _client: WebClient) -> dict[str, Any]:
    template_id = whole_number(words[1]) if len(words) >= 3 else None
    if template_id is None or not words[0].isdigit():
        raise Usage("Try `/sms send 1400000001 12 +14155550101 1234`.", "send")
    redis = current_app.extensions["redis"]
    req = sending.SendRequest([words[2]], template_id, words[3:])
    _request_id, [result] = sending.send(ctx, Limiter(redis), words[0], req)
    if result.code != errors.OK:
        return blocks.reply(f":no_entry: Not sent to {blocks.escape(result.phone_number)}: "
                            f"`{result.code}` — {blocks.escape(result.message)}")
    ctx.db.flush()
    msg = sending.get_message(ctx, words[0], result.serial_no)
    if body.get("response_url"):  # the receipt job updates this reply (30 minutes)
        redis.set(RECEIPT_KEY.format(msg.id), body["response_url"], ex=1800)
    return blocks.reply(f":outbox_tray: Sent to {result.phone_number}: {result.fee} billed "
                        f"item(s), serial `{result.serial_no}`. This message shows the "
                        "receipt when it arrives.")


def _mute(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    if words and words[0].lower() == "add":
        if len(words) < 4 or words[-1].lower() != "consent":
            raise Usage("Try `/sms mute add +8613800000000 Shop marketing consent` (type may "
                        "be all; “consent” confirms the owner asked).", "mute")
        signature = next((s for region in ("mainland", "international")
                          for s in content.list_signatures(ctx, region)
                          if s.content == words[2]), None)
        if signature is None:
            raise Usage(f"No signature “{words[2][:20]}”.", "mute")
        kind = words[3].lower() if len(words) > 4 else "all"
        _entry, added = mute.add_entry(ctx, phone_number=words[1], signature_id=signature.id,
                                       sms_type="" if kind == "all" else kind, consent=True)
        return blocks.reply(f":mute: {blocks.escape(words[1])} "
                            f"{'muted' if added else 'was already muted'} for "
                            f"{blocks.escape(signature.content)} ({kind}).")
    if len(words) != 1:
        raise Usage("Try `/sms mute +8613800000000`.", "mute")
    found = mute.entries(ctx, words[0])
    if not found:
        return blocks.reply(f"{blocks.escape(words[0])} is not on the mute list.")
    lines = [f"• signature #{e.signature_id}, {e.sms_type or 'all types'} (since "
             f"{e.created_at:%Y-%m-%d})" for e in found]
    return blocks.reply(f"{found[0].phone_number} is muted:\n" + "\n".join(lines))


def _unsubscribed(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    if len(words) != 1:
        raise Usage("Try `/sms unsubscribed +8613800000000`.", "unsubscribed")
    found = unsubscribes.query(ctx, phone_number=words[0])
    if not found:
        return blocks.reply(f"{blocks.escape(words[0])} has not unsubscribed from anything.")
    lines = [f"• signature #{u.signature_id}: {u.sms_type} ({u.source}, "
             f"{u.created_at:%Y-%m-%d})" for u in found]
    return blocks.reply(f"{found[0].phone_number} unsubscribed from:\n" + "\n".join(lines))


def _groups(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    found, total = audience.groups(ctx, " ".join(words))
    if not found:
        return blocks.reply("No customer groups yet." if not words else
                            f"No group matches “{blocks.escape(' '.join(words)[:40])}”.")
    lines = [f"• *{blocks.escape(g.name)}* ({templating.SMS_TYPES[g.sms_type]}): "
             f"{g.member_count:,} number{'s' if g.member_count != 1 else ''}" for g in found[:20]]
    more = f"\n…and {total - 20:,} more on the web." if total > 20 else ""
    return blocks.reply(f"{total:,} customer group{'s' if total != 1 else ''}:\n"
                        + "\n".join(lines) + more)


HANDLERS: dict[str, Callable[[Ctx, list[str], dict, WebClient], dict[str, Any]]] = {
    "apps": _apps, "app": _app, "templates": _templates, "signatures": _signatures,
    "template": _template, "reviews": _reviews, "send": _send, "mute": _mute,
    "unsubscribed": _unsubscribed, "groups": _groups,
    "alarms": alarms_command,  # bot/alarms.py
}


def _link(flask_app: Flask, words: list[str], body: dict) -> dict[str, Any]:
    """`/sms link CODE`: the member id comes from the request Slack signed, the user
    from the code the web showed them (app/services/slack_link.py says why)."""
    settings = Settings.from_config(flask_app.config)
    if len(words) != 1:
        raise Usage(f"Get a code at {settings.base_url}/account, then type "
                    "`/sms link CODE` here.", "link")
    with flask_app.app_context(), flask_app.extensions["db"].unit_of_work() as session:
        user = slack_link.redeem(session, flask_app.extensions["redis"], settings, words[0],
                                 body["user_id"])
        email = user.email
    return blocks.reply(f":link: Linked: in Slack you now act as {blocks.escape(email)}, "
                        "with that user's policies.")


def typed(text: str) -> str:
    """What the member typed: Slack sends & < > in a command's text as &amp; &lt; &gt;."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def register(bolt: App, flask_app: Flask) -> None:
    @bolt.command("/sms")
    def sms(ack: Ack, body: dict, client: WebClient) -> None:
        words = typed(body.get("text") or "").split()
        sub = words[0].lower() if words else "help"
        if sub == "link":  # before `acting`: the member is not linked yet
            try:
                answer = _link(flask_app, words[1:], body)
            except Usage as exc:
                answer = blocks.help_reply(str(exc), only=exc.command)
            except ServiceError as exc:
                answer = blocks.reply(blocks.refusal(exc))
            except Exception:
                log.exception("/sms link failed")
                answer = blocks.reply("Something went wrong on our side. It has been logged.")
            ack(**answer)
            return
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
            answer = blocks.reply(blocks.refusal(exc))
        except Exception:
            log.exception("/sms %s failed", sub)
            answer = blocks.reply("Something went wrong on our side. It has been logged.")
        ack(**answer)


from bot import stats as _stats  # noqa: E402 - needs Usage above; its own module

HANDLERS["stats"] = _stats.command
