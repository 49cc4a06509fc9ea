"""Alarm jobs: Slack messages updated after an acknowledge, the hourly monitors (on
RQ's scheduler), and the carrier link as the sending jobs see it."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import redis as redis_lib
from flask import Flask
from rq import Queue

from app.db import utcnow
from app.models.alarms import Alarm
from app.notify.slack import alarm_blocks
from app.queue import enqueue, enqueue_deferred
from app.services import alarms, monitors, notifications
from app.services.context import Settings
from jobs import runtime
from jobs.slack import call, client

log = logging.getLogger("smsops.alarms")
HOURLY_JOB = "jobs.alarms.hourly"
SCHEDULED_KEY = "smsops:monitor:hourly:{}"  # per hour: the next run is on RQ's scheduler
HOURLY_DELAY_S = 5  # after the hour, so messages of its last second are in
HOURLY_LOCK = "smsops:monitor:hourly:lock"
HOURLY_LOCK_S = 600  # a run takes seconds; a crashed one frees the lock after this


def refresh(alarm_id: int) -> None:
    """Show the acknowledge on every Slack message that carries the alarm."""
    with runtime.unit_of_work() as session:
        alarm = session.get(Alarm, alarm_id)
        if alarm is None:
            return
        data = alarms.slack_data(session, alarm)
        refs = alarms.slack_refs(session, alarm_id)
    blocks = alarm_blocks(data)
    text = f"{data['label']}: {data['subject']}"
    c = client()
    for ref in refs:
        channel, _, ts = ref.partition(":")
        call(c.chat_update, channel=channel, ts=ts, text=text, blocks=blocks)


def hourly() -> None:
    """Every finished hour not checked yet (a missed hour is caught up once), then
    expired packages. Safe on several workers at once: the checkpoint and each
    alarm's once-per-period key keep it to one alarm."""
    app = runtime.app()
    conn = app.extensions["redis"]
    # One run at a time: two at once could both claim an hour's alarm key, and the one
    # whose commit then failed would lose the alarm the other was refused.
    token = str(uuid.uuid4())
    if not conn.set(HOURLY_LOCK, token, nx=True, ex=HOURLY_LOCK_S):
        log.info("hourly monitors already running elsewhere")
        return
    try:
        settings = Settings.from_config(app.config)
        deferred: list[tuple[str, tuple[Any, ...]]] = []
        with runtime.unit_of_work() as session:
            hours = monitors.run_captcha(session, conn, settings, deferred)
            monitors.check_packages(session, conn, settings, deferred)
            alarms.finish_frequency(session, conn, utcnow(), deferred)
        enqueue_deferred(conn, deferred)
        log.info("hourly monitors: %d hour(s) checked", len(hours))
    finally:
        if conn.get(HOURLY_LOCK) == token.encode():  # ours still (not expired and retaken)
            conn.delete(HOURLY_LOCK)


def ensure_scheduled(app: Flask) -> None:
    """Keep the next hourly run on RQ's scheduler (called by each worker's sweeper
    every few seconds: one SET NX per call). Scheduling an hour also runs the
    monitor now, which checks any hour missed while no worker was up. Also, once a
    minute, deliveries whose job was lost are started again."""
    conn: redis_lib.Redis = app.extensions["redis"]
    redrive_notifications(app)
    now = utcnow()
    next_hour = monitors.hour_floor(now) + timedelta(hours=1)
    ttl = int((next_hour - now).total_seconds()) + 120
    if not conn.set(SCHEDULED_KEY.format(f"{next_hour:%Y%m%d%H}"), 1, nx=True, ex=ttl):
        return
    q = Queue("default", connection=conn)
    q.enqueue_at(next_hour + timedelta(seconds=HOURLY_DELAY_S), HOURLY_JOB)
    # Catch-up (a worker starting after an outage): finds nothing to do when the hour
    # was checked, e.g. at each rollover, where the previous hour's schedule also runs.
    q.enqueue_in(timedelta(seconds=HOURLY_DELAY_S), HOURLY_JOB)


REDRIVE_KEY = "smsops:notify:redrive"
REDRIVE_EVERY_S = 60


def redrive_notifications(app: Flask) -> int:
    """The notification rows are the work, RQ only wakes workers: rows pending well
    past their job's time get a delivery job again (the claim in
    notifications.deliver keeps a late original from sending twice)."""
    conn: redis_lib.Redis = app.extensions["redis"]
    if not conn.set(REDRIVE_KEY, 1, nx=True, ex=REDRIVE_EVERY_S):
        return 0
    with app.app_context(), app.extensions["db"].unit_of_work() as session:
        ids = notifications.stranded(session)
    if ids:
        log.warning("re-driving %d notification(s) whose delivery job was lost", len(ids))
        enqueue(conn, notifications.DELIVER_JOB, ids)
    return len(ids)


def observe_link(app: Flask, up: bool) -> None:
    """The sending jobs saw the carrier answer or not; never fails their work."""
    deferred: list[tuple[str, tuple[Any, ...]]] = []
    try:
        conn = app.extensions["redis"]
        if up and not conn.exists(alarms.LINK_DOWN_SINCE):
            return  # the usual case on the hot path: one Redis call, no database
        with app.app_context(), app.extensions["db"].unit_of_work() as session:
            alarms.link_seen(session, conn, up, Settings.from_config(app.config), deferred)
        enqueue_deferred(conn, deferred)
    except Exception as exc:  # an alarm problem must not fail a send
        log.warning("carrier link alarm failed: %s: %s", type(exc).__name__, exc)
