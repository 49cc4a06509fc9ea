"""What the web console shows a user: which areas they may reach, and the overview figures.

The navigation asks here (not in templates) so the links a user sees follow the same
policies the service functions enforce."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, select

from app.db import utcnow
from app.models import Account, Alarm, Application, SendTask, StatRollupDaily, Template
from app.models.content import EFFECTIVE
from app.models.sending import (
    ACCEPTED,
    SUBMITTING,
    Message,
)
from app.models.tasks import SENDING
from app.services import alarms, tasks
from app.services.access import ALL_APPS, Actor
from app.services.context import Ctx
from app.sms import outcomes

ROOT = "root"  # a navigation requirement: only the root user (users, policies, audit log)
ANYONE = ""  # any signed-in user (their own settings page checks its own action)


def can_reach(actor: Actor, requirement: str, per_app: bool = False) -> bool:
    """May the actor open a page that needs `requirement`?

    Most pages read account-wide things (content, mute list, packages, settings): their
    services require the action on every application (sms:app/*). Pages that list per
    application (`per_app`: the application list, the SMS log, statistics, sending) also
    open for a policy that allows the action on named applications only
    (sms:app/1400000001): they then show just those."""
    if requirement == ANYONE or actor.is_root:
        return True
    if requirement == ROOT:
        return False
    if actor.can(requirement):
        return True
    if not per_app:
        return False
    for st in actor.statements:
        if st.effect != "allow":
            continue
        for resource in st.resources:
            if (resource not in ("*", ALL_APPS) and st.matches(requirement, resource)
                    and actor.can(requirement, resource.removeprefix("sms:app/"))):
                return True  # allowed there and not taken back by a deny
    return False


def apps_to_choose(ctx: Ctx, action: str) -> list[Application]:
    """The applications a page about one application at a time (basic configuration,
    alarm contacts, security) offers: those the actor may do `action` on. Refused when
    no policy allows it anywhere; empty when it is allowed only on applications that are
    not there (yet)."""
    if not can_reach(ctx.actor, action, per_app=True):
        ctx.actor.require(action)  # says plainly which right is missing
    rows = ctx.db.scalars(select(Application).where(
        Application.account_id == ctx.actor.account_id).order_by(Application.sdk_app_id))
    return [a for a in rows if ctx.actor.can(action, a.sdk_app_id)]


# --- the overview dashboard ------------------------------------------------------------

REGIONS = ("mainland", "international")
TREND_DAYS = 7
STUCK_AFTER = timedelta(minutes=2)  # accepted this long and not yet taken: the link lags


@dataclass(frozen=True)
class DayFigures:
    day: date
    requests: int = 0
    successes: int = 0  # the carrier took it (whatever the receipt later says)
    billed: int = 0  # billed items of those successes

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.requests if self.requests else None


def _apps_for(ctx: Ctx, action: str) -> dict[int, str]:
    rows = ctx.db.execute(select(Application.id, Application.sdk_app_id)
                          .where(Application.account_id == ctx.actor.account_id))
    return {app_id: sdk for app_id, sdk in rows if ctx.actor.can(action, sdk)}


def _today(ctx: Ctx) -> tuple[date, datetime]:
    """Today in the account's zone, and the instant it began."""
    from app.services.packages import account_zone

    zone = account_zone(ctx.db.get(Account, ctx.actor.account_id))
    start = utcnow().astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return start.date(), start


def daily_figures(ctx: Ctx, days: int = TREND_DAYS) -> dict[str, list[DayFigures]]:
    """Requests, successes and billed items per region for the last `days` natural days,
    oldest first (the last is today), over the applications whose statistics the actor
    may read, from the statistics rollups by local day (never the message table)."""
    if not can_reach(ctx.actor, "DescribeStatistics", per_app=True):
        ctx.actor.require("DescribeStatistics")  # says plainly which right is missing
    visible = _apps_for(ctx, "DescribeStatistics")
    today, _midnight = _today(ctx)
    figures = {r: {n: [0, 0, 0] for n in range(days)} for r in REGIONS}
    if visible:
        ok = StatRollupDaily.outcome.in_(outcomes.SUCCESS)
        rows = ctx.db.execute(
            select(StatRollupDaily.region, StatRollupDaily.day,
                   func.sum(StatRollupDaily.count),
                   func.sum(case((ok, StatRollupDaily.count), else_=0)),
                   func.sum(case((ok, StatRollupDaily.billed), else_=0)))
            .where(StatRollupDaily.account_id == ctx.actor.account_id,
                   StatRollupDaily.app_id.in_(visible),
                   StatRollupDaily.day >= today - timedelta(days=days - 1))
            .group_by(StatRollupDaily.region, StatRollupDaily.day))
        for region, day, requests, successes, billed in rows:
            n = (today - day).days
            if region in figures and n in figures[region]:
                figures[region][n] = [int(requests or 0), int(successes or 0), int(billed or 0)]
    return {r: [DayFigures(today - timedelta(days=n), *figures[r][n])
                for n in reversed(range(days))] for r in REGIONS}


@dataclass(frozen=True)
class Credit:
    balance: int
    used_per_day: float  # mainland billed items a day over the last week
    days_left: int | None  # None: nothing used lately, so no end in sight
    metered: bool = True  # False: no package was ever added, so mainland sending is free


def credit(ctx: Ctx) -> Credit:
    """The usable credit-package balance and how long it lasts at the last week's rate."""
    from app.services.packages import balance, packages

    held = packages(ctx)
    left = balance(held)
    _, midnight = _today(ctx)
    since = midnight - timedelta(days=TREND_DAYS - 1)
    used = ctx.db.scalar(select(func.coalesce(func.sum(StatRollupDaily.billed), 0)).where(
        StatRollupDaily.account_id == ctx.actor.account_id,
        StatRollupDaily.region == "mainland", StatRollupDaily.day >= since.date(),
        StatRollupDaily.outcome != outcomes.REFUSED)) or 0
    rate = used / TREND_DAYS
    # Sending is metered once any package exists, expired ones included
    # (sending._consume_credit): without one there is no balance to run out.
    return Credit(left, rate, int(left / rate) if rate and held else None, bool(held))


@dataclass(frozen=True)
class Link:
    gateway: str
    state: str  # "down" or "up", as the carrier link's alarms record it
    down_since: datetime | None  # when the outage going on began
    up_since: datetime | None  # back up then, after the last outage recorded
    waiting: int  # accepted and not yet submitted for longer than STUCK_AFTER
    last_submitted: datetime | None


def carrier_link(ctx: Ctx, gateway: str) -> Link:
    """The carrier link: its state as the link-down / link-up alarms record it, with what
    the message table shows beside it (messages stuck waiting, the last submission). It
    counts the whole account's messages, so it needs the right on every application."""
    ctx.actor.require("DescribeSendSmsRecord")
    mine = Message.account_id == ctx.actor.account_id
    waiting = ctx.db.scalar(select(func.count()).where(
        mine, Message.status.in_((ACCEPTED, SUBMITTING)),
        Message.created_at < utcnow() - STUCK_AFTER)) or 0
    last = ctx.db.scalar(select(func.max(Message.submitted_at)).where(mine))
    recorded = alarms.link_state(ctx)
    state = "down" if recorded.down_since is not None else "up"
    return Link(gateway, state, recorded.down_since, recorded.up_since, waiting, last)


RUNNING_SHOWN = 5  # running tasks listed on the dashboard (the count covers them all)
OPEN_ALARMS_SHOWN = 3


@dataclass(frozen=True)
class RunningTask:
    task: SendTask
    sdk_app_id: str
    progress: tasks.Progress


@dataclass(frozen=True)
class Running:
    count: int
    shown: list[RunningTask]  # the longest-running first


def running_tasks(ctx: Ctx, limit: int = RUNNING_SHOWN) -> Running:
    """Bulk tasks sending now, with their progress, of the applications whose tasks the
    actor may describe."""
    if not can_reach(ctx.actor, "DescribeSendTasks", per_app=True):
        ctx.actor.require("DescribeSendTasks")
    visible = _apps_for(ctx, "DescribeSendTasks")
    if not visible:
        return Running(0, [])
    q = select(SendTask).where(SendTask.account_id == ctx.actor.account_id,
                               SendTask.app_id.in_(visible), SendTask.status == SENDING)
    count = ctx.db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = list(ctx.db.scalars(q.order_by(SendTask.id).limit(limit))) if count else []
    progress = tasks.progress_of(ctx, rows)
    return Running(count, [RunningTask(t, visible[t.app_id], progress[t.id]) for t in rows])


@dataclass(frozen=True)
class OpenAlarms:
    count: int
    latest: list[Alarm]  # newest first


def open_alarms(ctx: Ctx, limit: int = OPEN_ALARMS_SHOWN) -> OpenAlarms:
    """Alarms nobody has acknowledged yet (not the ones only told, like review results):
    the alarm history's "unacknowledged only", so the tile and the page it links to agree."""
    if not can_reach(ctx.actor, "DescribeAlarms", per_app=True):
        ctx.actor.require("DescribeAlarms")
    if not ctx.actor.can("DescribeAlarms") and not _apps_for(ctx, "DescribeAlarms"):
        return OpenAlarms(0, [])  # allowed on applications that are not there (any more)
    latest, count = alarms.history(ctx, alarms.Filters(unacknowledged=True), 1, limit)
    return OpenAlarms(count, latest)


@dataclass(frozen=True)
class Overview:
    """The dashboard: each part is None when the actor may not see it."""

    figures: dict[str, list[DayFigures]] | None
    pending_reviews: int | None
    credit: Credit | None
    link: Link | None
    running: Running | None = None
    alarms: OpenAlarms | None = None


def overview(ctx: Ctx, gateway: str) -> Overview:
    from app.services.reviews import pending_count

    return Overview(
        figures=daily_figures(ctx) if can_reach(ctx.actor, "DescribeStatistics", per_app=True)
        else None,
        pending_reviews=pending_count(ctx) if ctx.actor.can("DescribeSmsTemplateList") else None,
        credit=credit(ctx) if ctx.actor.can("DescribePackageList") else None,
        link=carrier_link(ctx, gateway) if ctx.actor.can("DescribeSendSmsRecord") else None,
        running=running_tasks(ctx) if can_reach(ctx.actor, "DescribeSendTasks", per_app=True)
        else None,
        alarms=open_alarms(ctx) if can_reach(ctx.actor, "DescribeAlarms", per_app=True)
        else None,
    )


# --- a test message from the web ---------------------------------------------------------

@dataclass(frozen=True)
class SendChoices:
    apps: list[Application]  # those the actor may send with
    templates: list[Template]  # effective ones, both regions


def send_choices(ctx: Ctx) -> SendChoices:
    """What the test-send form offers. The send itself is sending.send, as for the API."""
    from app.services.apps import list_apps
    from app.services.content import list_templates

    if not can_reach(ctx.actor, "SendSms", per_app=True):
        ctx.actor.require("SendSms")
    apps = [a for a in list_apps(ctx) if ctx.actor.can("SendSms", a.sdk_app_id)]
    templates: list[Template] = []
    if ctx.actor.can("DescribeSmsTemplateList"):
        templates = [t for region in REGIONS for t in list_templates(ctx, region)
                     if t.status == EFFECTIVE]
    return SendChoices(apps, templates)


# --- live rows of the SMS log ---------------------------------------------------------------

LIVE_MAX = 100  # ids per refresh: a page of the log holds at most 50


def messages_now(ctx: Ctx, ids: list[int]) -> list[tuple[Message, str]]:
    """The current state of these messages (rows the log shows in flight), with their
    application's AppID; only those whose send records the actor may read."""
    visible = _apps_for(ctx, "DescribeSendSmsRecord")
    if not visible or not ids:
        return []
    rows = ctx.db.scalars(select(Message).where(
        Message.id.in_(ids[:LIVE_MAX]), Message.app_id.in_(visible),
        Message.account_id == ctx.actor.account_id).order_by(Message.id.desc()))
    return [(m, visible[m.app_id]) for m in rows]
