"""Which console user a Slack user is: linked with a one-time code (app/services/
slack_link.py), or found once by the email Slack confirmed for the member."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import User
from app.notify.slack import describe

log = logging.getLogger("smsops.slack")


def resolve(session: Session, client: WebClient, slack_user_id: str) -> User | None:
    user = session.scalar(select(User).where(User.slack_user_id == slack_user_id))
    if user is not None:
        return user if user.active else None
    try:
        info = client.users_info(user=slack_user_id)
    except SlackApiError as exc:
        log.warning("users.info for %s failed: %s", slack_user_id, describe(exc))
        return None
    member = info.get("user") or {}
    # Only an address Slack has confirmed proves the member owns it; deleted members
    # and bots never link.
    if member.get("is_email_confirmed") is not True or member.get("deleted") \
            or member.get("is_bot"):
        return None
    email = (member.get("profile") or {}).get("email")
    if not email:
        return None
    user = session.scalar(select(User).where(func.lower(User.email) == email.lower(),
                                             User.slack_user_id.is_(None),
                                             User.slack_email_link.is_(True)))
    if user is None or not user.active:
        return None
    user.slack_user_id = slack_user_id  # linked from now on
    return user


def linked_but_disabled(session: Session, slack_user_id: str) -> bool:
    """Whether the member is linked to a user who is disabled (told so, not "link")."""
    return session.scalar(select(User.id).where(User.slack_user_id == slack_user_id,
                                                User.active.is_(False))) is not None
