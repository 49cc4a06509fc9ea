"""Block Kit builders: pure functions from domain objects to Slack JSON.

User text is escaped for mrkdwn (&, <, >, and look-alikes for * _ ~ `), and mrkdwn
objects are verbatim, so nobody can inject links, @channel mentions or formatting
through a template or a name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.models.content import STATUS_LABELS
from app.notify.slack import escape, escape_message
from app.sms.templating import SMS_TYPES

Block = dict[str, Any]
MAX_ITEMS = 20  # rows per list; the rest is summarised with a link to the web
MAX_TEXT = 2900  # a section holds 3,000 characters

# action and callback ids (constants: buttons carry only ids in their values)
APPROVE = "review_approve"
REJECT = "review_reject"
OPEN_WEB = "open_web"
REJECT_MODAL = "review_reject_modal"
TEMPLATE_MODAL = "template_new_modal"

HELP = {
    "help": "this list",
    "apps": "the applications you may see",
    "app <AppID>": "one application and its configuration",
    "templates [mainland|international]": "body templates",
    "signatures [mainland|international]": "signatures",
    "template new [mainland|international]": "write a template (opens a form)",
    "reviews": "content waiting for review, with Approve / Reject",
    "send <AppID> <template_id> <number> [params…]": "one test message; shows its receipt",
    "mute <number> | mute add <number> <signature> [type|all] consent": "the mute list",
    "unsubscribed <number>": "what a number opted out of",
    "groups [name]": "customer groups and how many numbers each holds",
    "alarms [AppID]": "recent alarms and who acknowledged them",
    "link <code>": "act as your smsops user (the code is on My account in the web)",
    "stats [AppID] [today|yesterday|7d|30d] [mainland|international]":
        "delivery figures and the top failure reasons",
}


def slack_time(at: datetime) -> str:
    """A UTC time that Slack shows in each reader's own zone (plain UTC as fallback)."""
    return (f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}"
            f"|{at:%Y-%m-%d %H:%M} UTC>")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack does not turn bare URLs, #channels or @names into links;
    # our own <url|label> links still work.
    return {"type": "mrkdwn", "text": _clip(text), "verbatim": True}


def section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def verbatim(text: str) -> Block:
    """User text shown exactly as written, in a block of its own: plain text, so no
    formatting, mention or link, and no line of it can pass for one of ours."""
    return {"type": "section", "text": {"type": "plain_text", "text": text[:3000] or " ",
                                        "emoji": False}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(text)]}


def link_button(text: str, url: str) -> Block:
    return {"type": "button", "action_id": OPEN_WEB, "text": {"type": "plain_text", "text": text},
            "url": url}


def reply(text: str, blocks: list[Block] | None = None) -> dict[str, Any]:
    """An ephemeral answer to a slash command: only the person who typed sees it."""
    out: dict[str, Any] = {"response_type": "ephemeral", "text": text}
    if blocks:
        out["blocks"] = blocks
    return out


SOMETHING_WRONG = "Something went wrong on our side; it has been logged. Try again."


def refusal(exc: Exception) -> str:
    """A service's refusal (or any error's words) as a reply line."""
    return f":no_entry: {escape_message(getattr(exc, 'message', str(exc)))}"


def help_reply(problem: str | None = None, only: str | None = None) -> dict[str, Any]:
    lines = [f"• `/sms {cmd}` — {what}" for cmd, what in HELP.items()
             if only is None or cmd.split()[0] == only]
    head = f":warning: {escape_message(problem)}\n" if problem else ""
    text = head + "*smsops commands*\n" + "\n".join(lines)
    return reply(text, [section(text)])


def _more(total: int, url: str) -> list[Block]:
    if total <= MAX_ITEMS:
        return []
    return [context(f"…and {total - MAX_ITEMS} more. <{url}|See them all on the web>")]


def apps_reply(apps: list[Any], base_url: str) -> dict[str, Any]:
    if not apps:
        return reply("You cannot see any application.")
    lines = [f"`{a.sdk_app_id}` *{escape(a.name)}* — {'enabled' if a.enabled else 'disabled'}"
             for a in apps[:MAX_ITEMS]]
    return reply(f"{len(apps)} application(s)",
                 [section("\n".join(lines)), *_more(len(apps), f"{base_url}/apps")])


def app_reply(app: Any, base_url: str) -> dict[str, Any]:
    def num(v: int | None) -> str:
        return "—" if v is None else f"{v:,}"

    freq = ", ".join(
        f"{label} {getattr(app, f'freq_{r}_limit')}" + ("" if getattr(app, f"freq_{r}_enabled")
                                                        else " (off)")
        for r, label in (("30s", "30 s"), ("hour", "hour"), ("day", "day")))
    text = (
        f"*{escape(app.name)}* `{app.sdk_app_id}` — {'enabled' if app.enabled else 'disabled'}\n"
        f"Mainland: alarm {num(app.mainland_alarm_threshold)}, limit "
        f"{num(app.mainland_daily_limit)}\n"
        f"International: alarm {num(app.intl_alarm_threshold)}, limit "
        f"{num(app.intl_daily_limit)}; countries: "
        f"{', '.join(c.iso_code for c in app.countries) or 'all'}\n"
        f"Frequency per number: {freq}\n"
        f"Allowlist: {len(app.allowlist)} number(s); alarm contacts: {len(app.contacts)}\n"
        f"Status callback: {escape(app.status_callback_url) if app.status_callback_url else '—'}"
    )
    url = f"{base_url}/apps/{app.sdk_app_id}"
    return reply(f"Application {app.sdk_app_id}",
                 [section(text), {"type": "actions", "elements": [link_button("Open", url)]}])


def templates_reply(templates: list[Any], region: str, base_url: str) -> dict[str, Any]:
    if not templates:
        return reply(f"No {region} templates yet. `/sms template new {region}` writes one.")
    lines = [f"`{t.id}` *{escape(t.name)}* ({SMS_TYPES[t.sms_type].lower()}, "
             f"{STATUS_LABELS[t.status].lower()})\n>{escape(t.content)}"
             for t in templates[:MAX_ITEMS]]
    url = f"{base_url}/content/templates?region={region}"
    return reply(f"{len(templates)} {region} template(s)",
                 [section("\n".join(lines)), *_more(len(templates), url)])


def signatures_reply(signatures: list[Any], region: str, base_url: str) -> dict[str, Any]:
    if not signatures:
        return reply(f"No {region} signatures yet.")
    lines = [f"`{s.id}` *{escape(s.content)}* — {STATUS_LABELS[s.status].lower()}"
             + ("" if s.usable or s.status != "effective" else " (unusable)")
             for s in signatures[:MAX_ITEMS]]
    url = f"{base_url}/content/signatures?region={region}"
    return reply(f"{len(signatures)} {region} signature(s)",
                 [section("\n".join(lines)), *_more(len(signatures), url)])


def review_blocks(kind: str, obj: Any, title: str, facts: dict[str, Any], base_url: str,
                  *, buttons: bool) -> list[Block]:
    """A review request; with the decision in place of the buttons once decided."""
    label = kind.replace("_", " ").capitalize()
    # What the submitter wrote (content, reason, notes) goes in verbatim blocks: shown
    # exactly, and no line of it reads as one of ours ("Submitted by ...").
    blocks: list[Block] = []
    lines = [f"*{label} for review:* {escape(title)}"]
    if kind == "template":
        lines.append(f"{obj.region.capitalize()}, {SMS_TYPES[obj.sms_type].lower()}"
                     + (", URLs allowed in parameters" if obj.allow_url_params else ""))
        blocks += [section("\n".join(lines)), verbatim(obj.content)]
        lines = [f"{facts['encoding']}, {facts['billed_items']} billed item(s) for a sample, "
                 f"{facts['characters']} characters"]
        if obj.carrier_template_id:
            lines.append(f"Carrier template id {escape(obj.carrier_template_id)}")
    elif kind == "signature":
        lines.append(f"{obj.region.capitalize()} signature `{escape(obj.content)}`, "
                     f"{obj.sign_type.replace('_', ' ')}, {obj.purpose}-use")
    elif kind == "unsubscribe_removal":
        lines.append(f"Send {obj.sms_type} messages from {escape(obj.signature.content)} "
                     f"({obj.signature.region}) to {escape(obj.phone_number)} again. Reason:")
        blocks += [section("\n".join(lines)), verbatim(obj.reason)]
        lines = []
    else:
        lines.append(f"Licence {escape(obj.licence_number)}, legal representative "
                     f"{escape(obj.legal_rep_name)}")
    if getattr(obj, "notes", ""):
        blocks += [section("\n".join([*lines, "Notes:"])), verbatim(obj.notes)]
        lines = []
    lines.append(f"Submitted by {escape(obj.submitted_by)} (revision {obj.revision})")
    blocks.append(section("\n".join(lines)))
    from app.services.reviews import link_of

    url = f"{base_url}{link_of(kind, obj.id)}"
    value = button_value(kind, obj.id, obj.revision)  # the revision this message shows
    if buttons and obj.status == "pending":
        blocks.append({"type": "actions", "block_id": f"review:{value}", "elements": [
            {"type": "button", "action_id": APPROVE, "style": "primary", "value": value,
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": REJECT, "style": "danger", "value": value,
             "text": {"type": "plain_text", "text": "Reject"}},
            link_button("Open in web", url)]})
    elif obj.status != "pending":
        icon = ":x:" if obj.status == "rejected" else ":white_check_mark:"
        outcome = f"{icon} *{STATUS_LABELS[obj.status]}* by {escape(obj.decided_by)}"
        if obj.decided_at is not None:
            outcome += f" {slack_time(obj.decided_at)}"
        if obj.reject_reason:
            outcome += f"\nReason: {escape(obj.reject_reason)}"
        blocks.append(section(outcome))
    return blocks


def button_value(kind: str, obj_id: int, revision: int) -> str:
    """What Approve / Reject carry: the object and the revision the reviewer saw."""
    return f"{kind}:{obj_id}:{revision}"


def superseded_blocks(kind: str, obj: Any, title: str, shown: int | None) -> list[Block]:
    """A review request whose object was edited after it was posted: no buttons."""
    label = kind.replace("_", " ")
    return [
        section(f"*{label.capitalize()} for review:* {escape(title)}"),
        context(f":arrows_counterclockwise: Revision {shown or '?'} of this {label} was "
                f"changed by {escape(obj.submitted_by)} before anyone decided. Its new "
                f"revision {obj.revision} is in a new request below."),
    ]


def reject_modal(kind: str, obj_id: int, revision: int, title: str,
                 origin: str) -> dict[str, Any]:
    return {
        "type": "modal", "callback_id": REJECT_MODAL,
        # the revision travels through the modal: the reason rejects what was seen
        "private_metadata": f"{button_value(kind, obj_id, revision)}|{origin}",
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"Reject the {kind} *{escape(title)}*. The submitter reads the reason."),
            {"type": "input", "block_id": "reason", "label": {"type": "plain_text",
                                                               "text": "Reason"},
             "element": {"type": "plain_text_input", "action_id": "reason", "multiline": True,
                         "max_length": 500}},
        ],
    }


TEMPLATE_FIELDS = {"name": "name", "sms_type": "sms_type", "content": "content", "notes": "notes",
                   "allow_url_params": "allow_url_params"}


def template_modal(region: str) -> dict[str, Any]:
    def text_input(block: str, label: str, *, multiline: bool = False, optional: bool = False,
                   max_length: int = 64) -> Block:
        return {"type": "input", "block_id": block, "optional": optional,
                "label": {"type": "plain_text", "text": label},
                "element": {"type": "plain_text_input", "action_id": block,
                            "multiline": multiline, "max_length": max_length}}

    options = [{"text": {"type": "plain_text", "text": label}, "value": key}
               for key, label in SMS_TYPES.items()]
    return {
        "type": "modal", "callback_id": TEMPLATE_MODAL, "private_metadata": region,
        "title": {"type": "plain_text", "text": f"New {region} template"[:24]},
        "submit": {"type": "plain_text", "text": "Submit for review"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            text_input("name", "Name"),
            {"type": "input", "block_id": "sms_type", "label": {"type": "plain_text",
                                                                 "text": "SMS type"},
             "element": {"type": "static_select", "action_id": "sms_type", "options": options,
                         "initial_option": options[1]}},
            text_input("content", "Content", multiline=True, max_length=499),
            context("Variables are {1}, {2}, … from 1; in a verification-code template {1} is "
                    "the code (4 to 8 letters or digits). Marketing content must say how to "
                    "opt out, e.g. “Reply R to unsubscribe”."),
            {"type": "input", "block_id": "allow_url_params", "optional": True,
             "label": {"type": "plain_text", "text": "Parameters"},
             "element": {"type": "checkboxes", "action_id": "allow_url_params", "options": [
                 {"text": {"type": "plain_text", "text": "Parameters may contain URLs"},
                  "value": "on"}]}},
            text_input("notes", "Notes for the reviewer", multiline=True, optional=True,
                       max_length=500),
        ],
    }
