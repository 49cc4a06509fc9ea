"""Approve / Reject buttons, the reject-reason modal, and the new-template modal."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.notify.slack import describe
from app.queue import enqueue
from app.services import content, reviews
from app.services.errors import ServiceError, ValidationError
from bot import blocks
from bot.context import NotLinked, acting, whole_number

log = logging.getLogger("smsops.slack")


STALE = ("This review message is out of date. Use `/sms reviews` or the web review "
         "queue to see what is waiting now.")


def _target(value: str) -> tuple[str, int, int] | None:
    """kind:id:revision from a button or a modal; None for anything else, e.g. a
    message posted before decisions named the revision they decide."""
    kind, obj_id, revision = ([*value.split(":"), "", ""])[:3]
    found, rev = whole_number(obj_id), whole_number(revision)
    if kind not in reviews.KINDS or found is None or rev is None:
        return None
    return kind, found, rev


def _origin(body: dict) -> str:
    """Where the click came from: the channel, and a response_url for ephemeral lists."""
    channel = (body.get("channel") or {}).get("id", "")
    return f"{channel}|{body.get('response_url', '')}"


def register(bolt: App, flask_app: Flask) -> None:
    redis = flask_app.extensions["redis"]

    def tell(body: dict, text: str) -> None:
        """An ephemeral explanation to the person who clicked, sent by a job."""
        channel = (body.get("channel") or {}).get("id") or body["user"]["id"]
        enqueue(redis, "jobs.slack.ephemeral", channel, body["user"]["id"], text)

    def refuse(body: dict, exc: Exception) -> None:
        tell(body, blocks.refusal(exc))

    @bolt.action(blocks.OPEN_WEB)
    def open_web(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL itself

    @bolt.action(blocks.APPROVE)
    def approve(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        target = _target(body["actions"][0]["value"])
        if target is None:
            tell(body, f":no_entry: {STALE}")
            return
        kind, obj_id, revision = target
        try:
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                reviews.approve(ctx, kind, obj_id, revision=revision)
        except (NotLinked, ServiceError) as exc:
            refuse(body, exc)
            return
        except Exception:  # acknowledged already: the clicker is told, not left waiting
            log.exception("approve failed")
            tell(body, f":no_entry: {blocks.SOMETHING_WRONG}")
            return
        if body.get("container", {}).get("is_ephemeral") and body.get("response_url"):
            enqueue(redis, "jobs.slack.replace_ephemeral", body["response_url"], kind, obj_id)

    @bolt.action(blocks.REJECT)
    def reject(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        target = _target(body["actions"][0]["value"])
        if target is None:
            tell(body, f":no_entry: {STALE}")
            return
        kind, obj_id, revision = target
        try:  # refuse before asking for a reason that would be refused anyway
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                obj = reviews.decidable(ctx, kind, obj_id, revision)
                title = reviews.title_of(kind, obj)
        except (NotLinked, ServiceError) as exc:
            refuse(body, exc)
            return
        except Exception:
            log.exception("reject failed")
            tell(body, f":no_entry: {blocks.SOMETHING_WRONG}")
            return
        try:  # the trigger_id lives 3 s: this call cannot wait for a job
            client.views_open(trigger_id=body["trigger_id"], view=blocks.reject_modal(
                kind, obj_id, revision, title, _origin(body)))
        except SlackApiError as exc:
            log.warning("views.open failed: %s", describe(exc))
            tell(body, "Slack would not open the form; try again.")

    @bolt.view(blocks.REJECT_MODAL)
    def reject_submitted(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        metadata, _, origin = view["private_metadata"].partition("|")
        target = _target(metadata)
        if target is None:
            ack(response_action="errors", errors={"reason": STALE[:150]})
            return
        kind, obj_id, revision = target
        reason = (view["state"]["values"]["reason"]["reason"].get("value") or "").strip()
        try:
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                reviews.reject(ctx, kind, obj_id, reason, revision=revision)
        except ValidationError as exc:
            ack(response_action="errors", errors={"reason": exc.errors["reason"][:150]})
            return
        except (NotLinked, ServiceError) as exc:
            ack(response_action="errors",
                errors={"reason": getattr(exc, "message", str(exc))[:150]})
            return
        except Exception:  # told in the form: no answer is Slack's own connection error
            log.exception("reject failed")
            ack(response_action="errors", errors={"reason": blocks.SOMETHING_WRONG})
            return
        ack()
        response_url = origin.partition("|")[2]
        if response_url:
            enqueue(redis, "jobs.slack.replace_ephemeral", response_url, kind, obj_id)

    @bolt.view(blocks.TEMPLATE_MODAL)
    def template_submitted(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        values: dict[str, Any] = view["state"]["values"]
        data = {
            "name": values["name"]["name"].get("value") or "",
            "sms_type": (values["sms_type"]["sms_type"].get("selected_option") or {})
            .get("value", ""),
            "content": values["content"]["content"].get("value") or "",
            "notes": values["notes"]["notes"].get("value") or "",
            "allow_url_params": ",".join(
                o.get("value", "") for o in (values.get("allow_url_params", {})
                                             .get("allow_url_params", {})
                                             .get("selected_options") or [])),
        }
        try:
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                content.create_template(ctx, view.get("private_metadata") or "mainland", data)
        except ValidationError as exc:
            ack(response_action="errors", errors={
                blocks.TEMPLATE_FIELDS.get(k, "content"): v[:150] for k, v in exc.errors.items()})
            return
        except (NotLinked, ServiceError) as exc:
            ack(response_action="errors",
                errors={"name": getattr(exc, "message", str(exc))[:150]})
            return
        except Exception:
            log.exception("template form failed")
            ack(response_action="errors", errors={"name": blocks.SOMETHING_WRONG})
            return
        ack()
