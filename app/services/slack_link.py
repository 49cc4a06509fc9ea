"""Linking a Slack member to a console user, proven at both ends.

The web shows the signed-in user a one-time code; the member types `/sms link CODE`
in Slack. The console user is proven by the web session that asked for the code, the
member by Slack's signature on the command (Slack puts the real member id in it).
This direction was chosen over "Slack shows a code, the web takes it" because there
an attacker can have Slack issue a code for *their* member id and talk a victim into
pasting it on the victim's own account page, after which the attacker's Slack acts
as the victim; here a code only ever grants the identity of the person it was shown
to, so abusing it means getting that person to hand over a secret.

Codes live in Redis only as SHA-256 digests, for CODE_TTL_SECONDS, one per user
(a new code replaces the last) and are consumed atomically on first use. Tries are
counted per member before the code is looked up, so guessing is throttled.
"""

from __future__ import annotations

import hashlib
import secrets

import redis as redis_lib
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import User
from app.services import audit
from app.services.accounts import actor_for
from app.services.context import Ctx, Settings
from app.services.errors import NotFound, PermissionDenied, ServiceError
from app.services.unique import taken

CODE_TTL_SECONDS = 600
MAX_TRIES = 5  # per Slack member per TRY_WINDOW_SECONDS
TRY_WINDOW_SECONDS = 900
# No 0/O, 1/I/L or U/V: easy to read off a screen and type.
ALPHABET = "ABCDEFGHJKMNPQRSTWXYZ23456789"
CODE_LENGTH = 10

_CODE_KEY = "smsops:slack-link:code:{}"  # digest → user id
_USER_KEY = "smsops:slack-link:user:{}"  # user id → digest of their live code
_TRY_KEY = "smsops:slack-link:tries:{}"  # member id → tries in the window

# INCR and start the window on the first try, in one step.
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class LinkFailed(ServiceError):
    code = "SlackLinkFailed"


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _normalize(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


def new_code(ctx: Ctx, redis: redis_lib.Redis) -> str:
    """A one-time code for the acting user to type in Slack as `/sms link CODE`."""
    if ctx.actor.user_id is None:
        raise PermissionDenied("Only a signed-in user can link a Slack account.")
    code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    digest = _digest(code)
    user_key = _USER_KEY.format(ctx.actor.user_id)
    old = redis.get(user_key)
    pipe = redis.pipeline()  # MULTI: the old code goes as the new one comes
    if old:
        pipe.delete(_CODE_KEY.format(old.decode() if isinstance(old, bytes) else old))
    pipe.set(_CODE_KEY.format(digest), ctx.actor.user_id, ex=CODE_TTL_SECONDS)
    pipe.set(user_key, digest, ex=CODE_TTL_SECONDS)
    pipe.execute()
    return f"{code[:5]}-{code[5:]}"


def redeem(db: Session, redis: redis_lib.Redis, settings: Settings, code: str,
           slack_user_id: str) -> User:
    """Link `slack_user_id` (taken from a request Slack signed) to the user the code was
    shown to. The caller commits."""
    tries_key = _TRY_KEY.format(slack_user_id)
    if int(redis.register_script(_COUNT)(keys=[tries_key], args=[TRY_WINDOW_SECONDS])) \
            > MAX_TRIES:
        raise LinkFailed("Too many wrong codes. Wait 15 minutes, then try a new code.")
    existing = db.scalar(select(User).where(User.slack_user_id == slack_user_id))
    if existing is not None:
        raise LinkFailed(f"Your Slack account is already linked to {existing.email}. To link "
                         f"another user, unlink it first at {settings.base_url}/account.")
    normalized = _normalize(code)
    pipe = redis.pipeline()  # MULTI: whoever deletes the key is the one who used it
    pipe.get(_CODE_KEY.format(_digest(normalized)))
    pipe.delete(_CODE_KEY.format(_digest(normalized)))
    owner, deleted = pipe.execute()
    user = db.get(User, int(owner)) if owner and deleted else None
    if user is None or not user.active:
        raise LinkFailed(f"This code is wrong or has expired. Get a new one at "
                         f"{settings.base_url}/account (codes last "
                         f"{CODE_TTL_SECONDS // 60} minutes and work once).")
    redis.delete(tries_key, _USER_KEY.format(user.id))
    ctx = Ctx(db, actor_for(user), settings)
    audit.record(ctx, "LinkSlackUser", "user", user.id,
                 {"slack_user_id": user.slack_user_id}, {"slack_user_id": slack_user_id})
    # Two codes typed at once by one member: the second link breaks the unique key.
    with taken(db, LinkFailed("Your Slack account was just linked by another code. To link "
                              f"another user, unlink it first at {settings.base_url}/account.")):
        user.slack_user_id = slack_user_id
    return user


def unlink(ctx: Ctx, user_id: int | None = None) -> User:
    """Remove a link: anyone their own, root anyone's. Setting a member id directly is
    not offered: it would skip the proof."""
    target = ctx.actor.user_id if user_id is None else user_id
    if target != ctx.actor.user_id:
        ctx.actor.require_root()
    user = ctx.db.get(User, target) if target is not None else None
    if user is None or user.account_id != ctx.actor.account_id:
        raise NotFound("No such user.")
    if user.slack_user_id is not None:
        audit.record(ctx, "UnlinkSlackUser", "user", user.id,
                     {"slack_user_id": user.slack_user_id}, {"slack_user_id": None})
        user.slack_user_id = None
    user.slack_email_link = False  # unlinked for good: only a code links again
    ctx.db.flush()
    return user
