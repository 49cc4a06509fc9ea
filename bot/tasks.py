"""`/sms tasks|task|stop|cancel` and the live task progress message (issue #10).

Registered from bot/app.py with one line; the handlers follow bot/commands.py's
shape (parse → one service call → Block Kit). Stop and cancel ask first: the
command answers with a confirmation button, and only the click acts.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.models.tasks import SendTask
from app.queue import enqueue
from app.services import apps, tasks
from app.services.context import Ctx, Settings
from app.services.errors import ServiceError, ValidationError
from app.services.limits import Limiter
from app.sms import errors as sms_errors
from app.sms import periods
from app.sms.text import REGIONS
from bot import blocks
from bot.blocks import Block, escape, escape_message, slack_time
from bot.commands import Usage
from bot.context import NotLinked, acting, whole_number

log = logging.getLogger("smsops.slack")

STOP_ASK = "task_stop_ask"  # the Stop button on a progress message: asks first
STOP_CONFIRM = "task_stop_confirm"
CANCEL_CONFIRM = "task_cancel_confirm"
KEEP = "task_keep"
RESPOND_JOB = "jobs.tasks.slack_respond"
BULK_MODAL = "task_bulk_modal"
BULK_CONFIRM_MODAL = "task_bulk_confirm"  # the confirm step, the same modal updated
BULK_FORM_KEY = "smsops:slack:bulk-form:{}"  # a submitted modal (by its view id)
BULK_FORM_TTL_S = 86_400  # far longer than a form stays open or a request stays valid
BULK_MAX_LINES = 100

HELP = {
    "tasks [mainland|international]": "recent bulk send tasks with their progress",
    "task <id>": "one task's progress",
    "stop <id>": "stop a sending task (asks first)",
    "cancel <id>": "cancel a scheduled or unconfirmed task (asks first)",
    "bulk": f"a small task: up to {BULK_MAX_LINES} lines of number, params (opens a form)",
}


def _bar(percent: int, width: int = 20) -> str:
    filled = round(width * percent / 100)
    return "█" * filled + "░" * (width - filled)


def progress_text(task: SendTask, p: tasks.Progress) -> str:
    status = task.status.replace("_", " ")
    if task.failure_reason:
        status += f": {escape(task.failure_reason)}"
    lines = [f"*Task {task.id}: {escape(task.name)}* — {status}",
             f"`{_bar(p.percent)}` {p.percent}%",
             f"{p.total:,} recipients · {p.submitted:,} submitted · {p.delivered:,} delivered"
             f" · {p.failed:,} failed · {p.remaining:,} remaining"]
    if p.unsent:
        lines.append(f"{p.unsent:,} left unsent ({task.status})")
    if p.paused_until:
        lines.append(":crescent_moon: Paused for quiet hours (no marketing from 21:00 to "
                     f"08:00): resumes {slack_time(p.paused_until)}")
    if task.status == "sending" and p.rate:
        left = f", about {periods.spoken(p.seconds_left)} left" if p.seconds_left else ""
        lines.append(f"{p.rate:,.1f} msg/s{left}")
    return "\n".join(lines)


def progress_blocks(task: SendTask, p: tasks.Progress, base_url: str) -> list[Block]:
    buttons: list[Block] = []
    if task.status == "sending":
        buttons.append({"type": "button", "action_id": STOP_ASK, "style": "danger",
                        "text": {"type": "plain_text", "text": "Stop"}, "value": str(task.id)})
    buttons.append(blocks.link_button("Open in web", f"{base_url}/tasks/{task.id}"))
    return [blocks.section(progress_text(task, p)), {"type": "actions", "elements": buttons}]


def _task_id(words: list[str], command: str) -> int:
    found = whole_number(words[0]) if len(words) == 1 else None
    if found is None:
        raise Usage(f"Give one task id, e.g. `/sms {command} 12`.", command)
    return found


def _tasks(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    region = words[0].lower() if words else None
    if region is not None and region not in REGIONS:
        raise Usage(f"“{region[:20]}” is not a region: use mainland or international.",
                    "tasks")
    rows, total = tasks.list_tasks(ctx, region, limit=10)
    if not rows:
        return blocks.reply("No bulk send tasks yet.")
    out: list[Block] = [blocks.section(progress_text(t, tasks.progress(ctx, t)))
                        for t, _sdk in rows]
    if total > len(rows):
        where = f"?region={region}" if region else ""
        out.append(blocks.context(f"{total - len(rows)} more: "
                                  f"{ctx.settings.base_url}/tasks{where}"))
    return blocks.reply(f"{total} task(s)", out)


def _task(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    task, _app = tasks.get_task(ctx, _task_id(words, "task"))
    p = tasks.progress(ctx, task)
    return blocks.reply(progress_text(task, p), progress_blocks(task, p, ctx.settings.base_url))


def _ask(ctx: Ctx, task_id: int, verb: str) -> dict[str, Any]:
    # Asked with the right the click will need: offered to whoever may do it, and to no
    # one else (the service decides, at the click too).
    task = tasks.can_stop(ctx, task_id) if verb == "stop" else tasks.can_cancel(ctx, task_id)
    action = STOP_CONFIRM if verb == "stop" else CANCEL_CONFIRM
    what = ("The rest stays unsent; a stopped task cannot resume." if verb == "stop"
            else "Nothing of it will be sent.")
    text = f"{verb.capitalize()} task {task.id} ({escape(task.name)})? {what}"
    return blocks.reply(text, [blocks.section(text), {"type": "actions", "elements": [
        {"type": "button", "action_id": action, "style": "danger", "value": str(task.id),
         "text": {"type": "plain_text", "text": f"{verb.capitalize()} task"}},
        {"type": "button", "action_id": KEEP, "value": str(task.id),
         "text": {"type": "plain_text", "text": "Keep it"}}]}])


def _stop(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    return _ask(ctx, _task_id(words, "stop"), "stop")


def _cancel(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    return _ask(ctx, _task_id(words, "cancel"), "cancel")


def bulk_modal() -> dict[str, Any]:
    def text_input(block: str, label: str, *, multiline: bool = False, optional: bool = False,
                   max_length: int = 64, hint: str = "") -> Block:
        out: Block = {"type": "input", "block_id": block, "optional": optional,
                      "label": {"type": "plain_text", "text": label},
                      "element": {"type": "plain_text_input", "action_id": block,
                                  "multiline": multiline, "max_length": max_length}}
        if hint:
            out["hint"] = {"type": "plain_text", "text": hint}
        return out

    return {
        "type": "modal", "callback_id": BULK_MODAL,
        "title": {"type": "plain_text", "text": "Small bulk send"},
        "submit": {"type": "plain_text", "text": "Create task"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            text_input("app", "Application (SDK AppID)", max_length=10),
            text_input("template", "Template id", max_length=9),
            text_input("sign", "Signature (optional internationally)", optional=True),
            text_input("lines", f"Recipients (up to {BULK_MAX_LINES} lines)", multiline=True,
                       max_length=3000, hint="One per line: number, param1, param2, …"),
        ],
    }


def confirm_modal(task: Any, pre: tasks.Preflight) -> dict[str, Any]:
    """The confirm step of the web (SPEC.md §3): what confirming sends, costs and would
    have refused now, and an acknowledgement to tick. Closing it sends nothing."""
    lines = [f"*Task {task.id}* is ready: {pre.valid:,} recipient(s), {pre.skipped:,} "
             f"line(s) skipped, {pre.billed_items:,} billed item(s), estimated cost "
             f"{escape_message(pre.cost_text)}."]
    lines += [f"• If sent now, {n:,} would be refused: `{code}` — "
              f"{escape_message(sms_errors.describe(code).reason)}"
              for code, n in pre.refusals.items()]
    lines += [escape_message(x) for x in
              [*pre.notes, *([pre.finish_estimate] if pre.finish_estimate else [])]]
    return {
        "type": "modal", "callback_id": BULK_CONFIRM_MODAL, "private_metadata": str(task.id),
        "notify_on_close": True,
        "title": {"type": "plain_text", "text": "Confirm the send"},
        "submit": {"type": "plain_text", "text": "Confirm and send"},
        "close": {"type": "plain_text", "text": "Not now"},
        "blocks": [blocks.section("\n".join(lines)),
                   {"type": "input", "block_id": "ack",
                    "label": {"type": "plain_text", "text": "Acknowledgement"},
                    "element": {"type": "checkboxes", "action_id": "ack", "options": [{
                        "text": {"type": "plain_text", "text":
                                 f"I have checked these figures: send {pre.valid:,} "
                                 "message(s)."}, "value": "yes"}]}}],
    }


def _bulk(ctx: Ctx, words: list[str], body: dict, client: WebClient) -> dict[str, Any]:
    if not apps.list_apps(ctx, "CreateSendTask"):
        return blocks.reply(":no_entry: You may not create send tasks in any application.")
    try:
        client.views_open(trigger_id=body["trigger_id"], view=bulk_modal())
    except Exception as exc:  # SlackApiError and network failures alike
        log.warning("views.open failed: %s", type(exc).__name__)
        return blocks.reply("Slack would not open the form; try again in a moment.")
    return {}


HANDLERS = {"tasks": _tasks, "task": _task, "stop": _stop, "cancel": _cancel, "bulk": _bulk}


def bulk_file(text: str) -> bytes:
    """The modal's lines as a CSV the task service reads like an upload: under a header
    of its own (a first line that is no number is an error, not a header), blank lines
    kept, so that row N + 1 is the user's line N."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["phone"])
    for line in text.splitlines():
        writer.writerow([cell.strip() for cell in line.split(",")] if line.strip() else [])
    return out.getvalue().encode()


def register(bolt: App, flask_app: Flask) -> None:
    """The commands join bot/commands.py's router; the buttons are handled here."""
    from bot import commands

    commands.HANDLERS.update(HANDLERS)
    blocks.HELP.update(HELP)
    redis = flask_app.extensions["redis"]

    def respond(body: dict, text: str) -> None:
        url = body.get("response_url")
        if url:  # a job answers after the ack (within Slack's 3 s)
            enqueue(redis, RESPOND_JOB, url, text)

    def act(body: dict, client: WebClient, verb: str) -> None:
        task_id = whole_number(body["actions"][0].get("value", ""))
        if task_id is None:
            respond(body, ":no_entry: This button is out of date.")
            return
        try:
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                task = (tasks.stop if verb == "stop" else tasks.cancel)(ctx, task_id)
                text = (f":octagonal_sign: Task {task.id} stopped; the rest stays unsent."
                        if verb == "stop" else f":wastebasket: Task {task.id} cancelled.")
        except (NotLinked, ServiceError) as exc:
            text = blocks.refusal(exc)
        except Exception:
            log.exception("task %s failed", verb)
            text = "Something went wrong on our side. It has been logged."
        respond(body, text)

    @bolt.view(BULK_MODAL)
    def bulk_submitted(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        import io

        values: dict[str, Any] = view["state"]["values"]

        def value(block: str) -> str:
            return (values.get(block, {}).get(block, {}).get("value") or "").strip()

        # As typed, blank lines included: an error's line number is the user's line.
        typed_lines = values.get("lines", {}).get("lines", {}).get("value") or ""
        lines = [x for x in typed_lines.splitlines() if x.strip()]
        if not lines or len(lines) > BULK_MAX_LINES:
            ack(response_action="errors", errors={
                "lines": f"Give 1 to {BULK_MAX_LINES} lines ({len(lines)} given)."})
            return
        template_id = whole_number(value("template"))
        if template_id is None:
            ack(response_action="errors", errors={"template": "Give the template's id."})
            return
        fields = {"sdk_app_id": "app", "template_id": "template", "sign_name": "sign",
                  "file": "lines", "": "lines", "acknowledge": "lines"}
        # One form makes at most one task: the same submission again (replayed, or
        # Submit pressed again while the first was slow to answer) would send every
        # number again. Held while this one runs; kept with its task; freed if refused.
        form = BULK_FORM_KEY.format(view.get("id", ""))
        if not redis.set(form, "", nx=True, ex=BULK_FORM_TTL_S):
            earlier = (redis.get(form) or b"").decode()
            ack(response_action="errors", errors={"lines": (
                f"This form was sent already: task {earlier}." if earlier
                else "This form is being sent already.")})
            return
        task_id = None
        try:
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                draft = tasks.Draft(value("app"), template_id, name="From Slack",
                                    sign_name=value("sign") or None)
                task, summary = tasks.create_task(ctx, draft, io.BytesIO(bulk_file(
                    typed_lines)), "slack.csv")
                if summary.errors:  # the modal shows why; nothing is kept
                    first = summary.first_errors[0]
                    raise ValidationError({"file": f"Line {first.row - 1}: {first.reason} "
                                                   f"({summary.errors} line(s) with errors)."})
                step = confirm_modal(task, tasks.preflight(ctx, Limiter(redis), task.id))
                task_id = task.id
        except ValidationError as exc:
            ack(response_action="errors", errors={
                fields.get(k, "lines"): v[:150] for k, v in exc.errors.items()})
            return
        except (NotLinked, ServiceError) as exc:
            ack(response_action="errors",
                errors={"app": getattr(exc, "message", str(exc))[:150]})
            return
        except Exception:  # the database gone, say: told in the form, not a Slack error
            log.exception("/sms bulk failed")
            ack(response_action="errors", errors={"lines": blocks.SOMETHING_WRONG})
            return
        finally:
            if task_id is None:  # refused or failed: the form may be corrected and sent
                redis.delete(form)
        redis.set(form, str(task_id), xx=True, ex=BULK_FORM_TTL_S)
        ack(response_action="update", view=step)

    @bolt.view(BULK_CONFIRM_MODAL)
    def bulk_confirmed(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        task_id = whole_number(view.get("private_metadata", ""))
        ticked = bool(view["state"]["values"].get("ack", {}).get("ack", {})
                      .get("selected_options"))
        try:
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                task = tasks.confirm(ctx, -1 if task_id is None else task_id,
                                     acknowledged=ticked)
                status = task.status
        except ValidationError as exc:
            ack(response_action="errors",
                errors={"ack": next(iter(exc.errors.values()))[:150]})
            return
        except (NotLinked, ServiceError) as exc:
            ack(response_action="errors", errors={"ack": getattr(exc, "message",
                                                                 str(exc))[:150]})
            return
        except Exception:
            log.exception("/sms bulk confirm failed")
            ack(response_action="errors", errors={"ack": blocks.SOMETHING_WRONG})
            return
        ack()
        enqueue(redis, "jobs.tasks.slack_dm", body["user"]["id"],
                f"Task {task_id} confirmed: {status.replace('_', ' ')}. Its progress "
                "follows here.")

    @bolt.view_closed(BULK_CONFIRM_MODAL)
    def bulk_not_now(ack: Ack, body: dict, view: dict) -> None:
        ack()
        base = Settings.from_config(flask_app.config).base_url
        task_id = whole_number(view.get("private_metadata", ""))
        enqueue(redis, "jobs.tasks.slack_dm", body["user"]["id"],
                f"Task {task_id} was not confirmed: nothing is sent. Confirm or cancel it "
                f"in the web: {base}/tasks/{task_id}")

    @bolt.action(STOP_CONFIRM)
    def stop_confirmed(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        act(body, client, "stop")

    @bolt.action(CANCEL_CONFIRM)
    def cancel_confirmed(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        act(body, client, "cancel")

    @bolt.action(KEEP)
    def keep(ack: Ack, body: dict) -> None:
        ack()
        respond(body, "Nothing changed.")

    @bolt.action(STOP_ASK)
    def stop_ask(ack: Ack, body: dict, client: WebClient) -> None:
        """Stop on a progress message: confirm in an ephemeral message first."""
        ack()
        task_id = whole_number(body["actions"][0].get("value", ""))
        channel = (body.get("channel") or {}).get("id") or body["user"]["id"]
        try:
            with acting(flask_app, client, body["user"]["id"]) as ctx:
                answer = _ask(ctx, -1 if task_id is None else task_id, "stop")
        except (NotLinked, ServiceError) as exc:
            answer = blocks.reply(blocks.refusal(exc))
        enqueue(redis, "jobs.tasks.slack_ephemeral", channel, body["user"]["id"],
                answer["text"], answer.get("blocks"))
