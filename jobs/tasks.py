"""Bulk send task jobs: convert a task's recipients into messages a batch at a time.

The rules are in app/services/tasks.py. The messages then travel the one pipeline
(jobs/sending.py drains them); this job only feeds it, at the task's rate.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

import redis as redis_lib
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.gateways.base import GatewayUnavailable
from app.models.tasks import SENDING, SendTask
from app.queue import DRAIN_JOB, enqueue, enqueue_deferred, waiting
from app.services import pipeline, tasks
from app.services import sending as sending_service
from app.services.context import Ctx, Settings
from app.services.limits import Limiter
from app.services.pipeline import PipelineSettings
from app.supervise import stopping
from jobs import runtime
from jobs.sending import _db_retry, _wake, submit_claimed

log = logging.getLogger("smsops.tasks")
RUN_BUDGET_S = 30.0  # one job's share before it hands over to a new one
HEARTBEAT_S = 10  # a running dispatcher refreshes this; the sweeper starts one without it
SETTLE_POLL_S = 0.2  # everything converted: how often to look whether it all left
LANES = 2  # dispatchers per sending task, each on its own worker (TASK_LANES)
URGENT = ("pipeline", "receipts")  # queues a dispatcher makes way for


def _heartbeat(app: Flask) -> int:
    return int(app.config.get("TASK_HEARTBEAT_S", HEARTBEAT_S))


def heartbeat_key(task_id: int, lane: int = 0) -> str:
    return f"smsops:task:running:{task_id}" + (f":{lane}" if lane else "")


def _step(task_id: int, claim: sending_service.Claim | None) -> tasks.Step:
    app = runtime.app()
    limiter = Limiter(app.extensions["redis"])
    settings = Settings.from_config(app.config)

    deferred: list[tuple[str, tuple[Any, ...]]] = []

    def work(session: Session) -> tasks.Step:
        deferred.clear()  # a retried unit of work asks again
        account_id = session.scalar(select(SendTask.account_id).where(SendTask.id == task_id))
        if account_id is None:
            return tasks.Step(0, 0, "missing")
        task = session.get(SendTask, task_id)
        assert task is not None
        ctx = Ctx(session, tasks.system_actor(task), settings)
        step = tasks.dispatch_step(ctx, limiter, task_id,
                                   batch=int(app.config.get("TASK_BATCH", tasks.BATCH)),
                                   claim=claim)
        # The drain is woken by the caller when it is needed; the rest (an alarm's
        # deliveries, say) starts once this commits, as for any unit of work.
        deferred.extend(d for d in ctx.deferred if d[0] != DRAIN_JOB)
        return step

    step = _db_retry(work, 30)
    try:
        enqueue_deferred(app.extensions["redis"], deferred)
    except redis_lib.RedisError as exc:  # committed: the sweeper re-drives lost deliveries
        log.warning("task %s: jobs not enqueued (%s)", task_id, exc)
    return step


def _lanes(app: Flask) -> int:
    return max(1, int(app.config.get("TASK_LANES", LANES)))


def run(task_id: int, lane: int = 0) -> int:
    """Feed the pipeline until the task is done, stopped, paused or out of budget;
    returns how many recipients this job converted.

    Each step converts a batch into messages already held for this job (written as
    `submitting` under a fresh attempt and lease, committed), then submits them
    and records the results: no claim statement and no job round trip per batch.
    The recovery is the pipeline's own: a job killed after the commit leaves a
    held batch whose lease the sweeper resolves. Lane 0 starts the other lanes
    (parallel dispatchers on other workers; SKIP LOCKED keeps their batches apart)
    and settles the task; a lane makes way for urgent queues between batches."""
    app = runtime.app()
    conn = app.extensions["redis"]
    pipeline_settings = PipelineSettings.from_config(app.config)
    deadline = time.monotonic() + RUN_BUDGET_S
    converted = 0
    while True:
        # The heartbeat only spares the sweeper (or lane 0) starting a duplicate job.
        with contextlib.suppress(redis_lib.RedisError):
            conn.set(heartbeat_key(task_id, lane), 1, ex=_heartbeat(app))
        attempt = pipeline.new_attempt()
        claim = sending_service.Claim(attempt, utcnow() + timedelta(
            seconds=pipeline_settings.lease_s))
        step = _step(task_id, claim)
        converted += step.converted
        with contextlib.suppress(redis_lib.RedisError):  # else they expire (limits.HOLD_MS)
            Limiter(conn).holding(tasks.held_key(task_id)).forget(step.serials)
        if step.outbound:
            try:
                submit_claimed(app, pipeline_settings, attempt, step.outbound)
            except GatewayUnavailable:
                # Released to accepted (the drainer and sweeper retry them); the next
                # step waits for them before converting more (dispatch_step).
                _later(conn, task_id, 5.0, lane)
                return converted
        elif step.accepted:
            _wake(app, DRAIN_JOB)
        if step.status != SENDING:
            if step.status != "missing" and lane == 0:
                slack_progress(app, task_id, force=True)  # the final figures
            return converted
        if lane == 0:
            slack_progress(app, task_id)
            if step.converted:
                _start_lanes(app, task_id)
        if step.wait_s > 2:  # quiet hours: come back when they end
            if lane:
                return converted
            _later(conn, task_id, step.wait_s)
            with contextlib.suppress(redis_lib.RedisError):  # the sweeper need not wake it
                conn.set(heartbeat_key(task_id), 1, ex=int(step.wait_s) + _heartbeat(app))
            return converted
        if step.converted == 0:
            if lane:
                return converted  # nothing left to convert: lane 0 settles the task
            # Waiting for the pipeline to catch up (or to settle the task): hand the
            # worker over, so a single worker drains before this comes back.
            time.sleep(min(step.wait_s or SETTLE_POLL_S, 2.0))
            _later(conn, task_id, 0)
            return converted
        # API sends and receipts wait for no bulk task: one round trip per batch.
        # A stopping worker hands over too: a stop must not wait out RUN_BUDGET_S.
        if time.monotonic() > deadline or stopping.is_set() or waiting(conn, URGENT):
            _later(conn, task_id, 0, lane)  # behind the urgent queues (QUEUE_NAMES order)
            return converted
        if step.wait_s:
            time.sleep(step.wait_s)  # the rate cap: the next tokens


def _start_lanes(app: Flask, task_id: int) -> None:
    """Lane 0 makes sure the other lanes run (each refreshes its own heartbeat)."""
    conn = app.extensions["redis"]
    try:
        for lane in range(1, _lanes(app)):
            if conn.set(heartbeat_key(task_id, lane), 1, nx=True, ex=_heartbeat(app)):
                enqueue(conn, tasks.RUN_JOB, task_id, lane)
    except redis_lib.RedisError as exc:
        log.warning("task %s: extra dispatchers not started: %s", task_id, exc)


def _later(conn: redis_lib.Redis, task_id: int, seconds: float, lane: int = 0) -> None:
    from rq import Queue

    args = (task_id, lane) if lane else (task_id,)
    if seconds <= 0:
        enqueue(conn, tasks.RUN_JOB, *args)
    else:
        Queue("default", connection=conn).enqueue_at(utcnow() + timedelta(seconds=seconds),
                                                     tasks.RUN_JOB, *args)


def redrive(app: Flask) -> int:
    """From the sweeper: start a dispatcher for each sending task without one (its
    job was lost: Redis restarted, a worker killed), and for scheduled tasks that
    are due. Returns how many were started."""
    conn = app.extensions["redis"]
    with app.app_context(), app.extensions["db"].unit_of_work() as session:
        due = tasks.due_tasks(session)
    started = 0
    for task_id in due:
        if conn.set(heartbeat_key(task_id), 1, nx=True, ex=_heartbeat(app)):
            enqueue(conn, tasks.RUN_JOB, task_id)
            started += 1
    return started


# --- Slack: answers to buttons, and the live progress message ----------------------------

SLACK_EVERY_S = 3.0  # chat.update is rate limited (about 50 a minute per workspace)


def slack_respond(response_url: str, text: str) -> None:
    from slack_sdk.webhook import WebhookClient

    try:
        WebhookClient(response_url, timeout=10).send(text=text, replace_original=True)
    except Exception as exc:  # the URL expires after 30 minutes; nothing to retry then
        log.warning("response_url answer failed: %s", type(exc).__name__)


def slack_ephemeral(channel: str, user: str, text: str,
                    blocks: list[dict[str, Any]] | None = None) -> None:
    _slack_call("chat_postEphemeral", channel=channel, user=user, text=text, blocks=blocks)


def slack_dm(user: str, text: str) -> None:
    _slack_call("chat_postMessage", channel=user, text=text)


def _slack_call(method: str, **kwargs: Any) -> Any | None:
    """One Web API call; a refusal (rate limit, channel gone) is logged, never raised:
    the next update carries the newer figures anyway."""
    from slack_sdk.errors import SlackApiError

    from app.notify.slack import describe, web_client

    try:
        return getattr(web_client(runtime.app().config), method)(**kwargs)
    except SlackApiError as exc:
        log.warning("Slack %s failed: %s", method, describe(exc))
        return None


def _slack_key(task_id: int) -> str:
    return f"smsops:task:slack:{task_id}"


def progress_now(task_id: int) -> None:
    """The progress message brought up to date at once (tasks.PROGRESS_JOB)."""
    slack_progress(runtime.app(), task_id, force=True)


def slack_progress(app: Flask, task_id: int, *, force: bool = False) -> None:
    """Post the task's progress message (to its creator's DM and the task channel, if
    set) the first time; afterwards update it in place, at most every SLACK_EVERY_S
    unless `force` (the final figures). Off when Slack is not configured. One caller
    at a time per task (a Redis lock): two workers' first posts at once made two
    messages. A target whose post failed is posted to at the next update, up to
    POST_TRIES times."""
    if not app.config.get("SLACK_BOT_TOKEN"):
        return
    import json

    conn = app.extensions["redis"]
    key = _slack_key(task_id)
    try:
        state = json.loads(conn.get(key) or "{}")
        wait = SLACK_EVERY_S - (time.time() - state.get("at", 0))
        if not force and state and wait > 0:
            # Made once the interval is over (one for any number held back): the last
            # update must not be lost (a receipt that never comes keeps the task from
            # looking final, so no forced one follows).
            _update_later(conn, key, task_id, wait)
            return
        lock = conn.lock(key + ":lock", timeout=60, blocking=False)
        if not lock.acquire():  # another worker is posting or updating it right now
            _update_later(conn, key, task_id, 1.0)
            return
        try:
            _post_or_update(app, task_id, key)
        finally:
            with contextlib.suppress(redis_lib.RedisError):
                lock.release()
    except redis_lib.RedisError as exc:
        log.warning("task %s progress message skipped: %s", task_id, exc)


POST_TRIES = 3  # posts to one target before its message is given up


def _update_later(conn: redis_lib.Redis, key: str, task_id: int, seconds: float) -> None:
    """One update scheduled after `seconds`, however many callers ask meanwhile."""
    if conn.set(key + ":later", 1, nx=True, ex=int(seconds) + 1):
        from rq import Queue

        Queue("default", connection=conn).enqueue_at(
            utcnow() + timedelta(seconds=seconds), tasks.PROGRESS_JOB, task_id)


def _post_or_update(app: Flask, task_id: int, key: str) -> None:
    """The message brought up to date for every target (under the caller's lock)."""
    import json

    from app.models import User
    from bot.tasks import progress_blocks, progress_text

    conn = app.extensions["redis"]
    state = json.loads(conn.get(key) or "{}")  # again: a holder before us may have posted
    with app.app_context(), app.extensions["db"].unit_of_work() as session:
        task = session.get(SendTask, task_id)
        if task is None:
            return
        ctx = Ctx(session, tasks.system_actor(task), Settings.from_config(app.config))
        p = tasks.progress(ctx, task)
        text = progress_text(task, p)
        blocks = progress_blocks(task, p, ctx.settings.base_url)
        creator = session.get(User, task.created_by) if task.created_by else None
        targets = [creator.slack_user_id] if creator and creator.slack_user_id else []
    if app.config.get("SLACK_TASK_CHANNEL"):
        targets.append(str(app.config["SLACK_TASK_CHANNEL"]))
    posted: dict[str, list[str]] = state.get("posted") or {}  # target → [channel, ts]
    tries: dict[str, int] = state.get("tries") or {}
    for target in targets:
        if target in posted:
            channel, ts = posted[target]
            _slack_call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)
        elif tries.get(target, 0) < POST_TRIES:
            answer = _slack_call("chat_postMessage", channel=target, text=text, blocks=blocks)
            if answer is not None:
                posted[target] = [answer["channel"], answer["ts"]]
            else:
                tries[target] = tries.get(target, 0) + 1
    conn.set(key, json.dumps({"posted": posted, "tries": tries, "at": time.time()}),
             ex=7 * 86400)
