"""Review requests in the Slack review channel: posted on submission, updated in
place on any decision (web or Slack), so nobody can decide twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ReviewMessage
from app.services import reviews
from app.services.context import Settings
from bot import blocks
from jobs import runtime
from jobs.slack import call, client


def _enabled() -> str | None:
    config = runtime.app().config
    return config.get("SLACK_REVIEW_CHANNEL") if config.get("SLACK_BOT_TOKEN") else None


def message_blocks(session: Session, kind: str, obj_id: int,
                   *, buttons: bool) -> tuple[str, list[Any]] | None:
    obj = session.get(reviews.KINDS[kind], obj_id)
    if obj is None:
        return None
    title = reviews.title_of(kind, obj)
    base_url = Settings.from_config(runtime.app().config).base_url
    # The fallback shows in notifications: escaped like the blocks.
    text = f"{reviews.LABELS[kind].capitalize()} “{blocks.escape(title)}”: {obj.status_label}"
    return text, blocks.review_blocks(kind, obj, title, reviews.facts_of(obj), base_url,
                                      buttons=buttons)


def _supersede(session: Session, row: ReviewMessage, obj: Any, kind: str) -> None:
    """The earlier request of an edited object loses its buttons, saying why."""
    title = reviews.title_of(kind, obj)
    text = (f"{reviews.LABELS[kind].capitalize()} “{blocks.escape(title)}” changed; "
            f"a new review request follows")
    call(client().chat_update, channel=row.channel, ts=row.ts, text=text,
         blocks=blocks.superseded_blocks(kind, obj, title, row.revision))
    row.has_buttons = False
    session.flush()


def submitted(kind: str, obj_id: int) -> None:
    channel = _enabled()
    if not channel:
        return
    with runtime.unit_of_work() as session:
        found = message_blocks(session, kind, obj_id, buttons=True)
        obj = session.get(reviews.KINDS[kind], obj_id)
        if found is None or obj is None or obj.status != "pending":
            return
        text, body = found
        row = session.scalar(select(ReviewMessage).where(ReviewMessage.kind == kind,
                                                         ReviewMessage.object_id == obj_id))
        if row is not None and row.revision == obj.revision:
            return  # this revision is already posted (a job run twice)
        if row is not None and row.has_buttons:
            _supersede(session, row, obj, kind)  # edited while pending
        c = client()
        posted = call(c.chat_postMessage, channel=channel, text=text, blocks=body,
                      unfurl_links=False)
        if posted is None:
            return
        if row is None:
            row = ReviewMessage(account_id=obj.account_id, kind=kind, object_id=obj_id,
                                channel=posted["channel"], ts=posted["ts"])
            session.add(row)
        else:  # resubmitted: the newest request is the one to update
            row.channel, row.ts = posted["channel"], posted["ts"]
        row.revision, row.has_buttons = obj.revision, True


def decided(kind: str, obj_id: int) -> None:
    if not _enabled():
        return
    with runtime.unit_of_work() as session:
        row = session.scalar(select(ReviewMessage).where(ReviewMessage.kind == kind,
                                                         ReviewMessage.object_id == obj_id))
        found = message_blocks(session, kind, obj_id, buttons=False)
        obj = session.get(reviews.KINDS[kind], obj_id)
        if row is None or found is None or obj is None or obj.status == "pending":
            return  # pending again: edited since, and a newer request replaces this one
        text, body = found
        c = client()
        call(c.chat_update, channel=row.channel, ts=row.ts, text=text, blocks=body)
        row.has_buttons = False
