"""Alarm jobs with a real RQ worker: every channel at once (SMTP on loopback, the
Slack Web API on loopback, SMS through the simulator), a failing channel that does
not stop the others and is retried with back-off, and the hourly monitor kept on
RQ's scheduler."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.db import utcnow
from app.models import Notification
from app.models.alarms import AlarmDelivery, MonitorCheckpoint
from app.models.notifications import FAILED, SENT
from app.queue import enqueue_deferred
from app.services import alarms, app_config, monitors
from app.services.context import Ctx, Settings
from jobs import alarms as alarm_jobs
from jobs import worker
from tests.bot.conftest import SlackAPI
from tests.conftest import Backend
from tests.helpers import at_once
from tests.jobs import test_notify
from tests.jobs.test_alarm_sms import CountingSimulator
from tests.sending import conftest as sending
from tests.sending.conftest import Shop

shop = sending.shop  # the fixture: an application with effective content
smtp = test_notify.smtp  # the fixture: a loopback SMTP server
MOBILE = "+8613900000001"


def test_every_channel_and_a_failing_one(backend: Backend, session: Session, shop: Shop,
                                         smtp: Any, instance_dir: Path) -> None:
    inbox, port = smtp
    api = SlackAPI()
    try:
        app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                          "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x",
                          "SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_STARTTLS": False,
                          "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": f"{api.url}/api/",
                          "SLACK_ALARM_CHANNEL": "CALARM001"})
        gateway = CountingSimulator(instance_dir / "simulator.jsonl")
        app.extensions["gateway"] = gateway
        contact = app_config.add_contact(shop.ctx, shop.app.sdk_app_id, name="Ops",
                                         mobile=MOBILE, email="ops@example.com",
                                         slack_user_id="U0ONCALL1", events=["task"])
        contact.mobile_confirmed_at = utcnow()
        c = Ctx(session, shop.ctx.actor, Settings.from_config(app.config))
        # Slack refuses the first post (the contact's DM: deliveries go in order).
        api.replies["chat.postMessage"] = (200, {"ok": False, "error": "not_in_channel"}, {})
        alarm = alarms.raise_task_event(c, backend.redis, shop.app, 5, "failed")
        assert alarm is not None
        session.commit()
        enqueue_deferred(app.extensions["redis"], c.deferred)
        worker.run(app, burst=True)
        session.expire_all()
        rows = {(n.channel, n.recipient): n for n in session.scalars(
            select(Notification).join(AlarmDelivery,
                                      AlarmDelivery.notification_id == Notification.id)
            .where(AlarmDelivery.alarm_id == alarm.id))}
        assert set(rows) == {("email", "ops@example.com"), ("sms", MOBILE),
                             ("slack", "U0ONCALL1"), ("slack", "CALARM001")}
        failed = [n for n in rows.values() if n.status == FAILED]
        assert len(failed) == 1 and failed[0].error == "Slack: not_in_channel"
        assert all(n.status == SENT for n in rows.values() if n not in failed)
        ours = [m for m in inbox.messages if m["To"] == "ops@example.com"]
        assert len(ours) == 1 and ours[0]["Subject"] == "Bulk task #5 failed in Shop"
        assert gateway.received() == [(MOBILE, "【smsops】App "
                                       f"{shop.app.sdk_app_id}: bulk task #5 failed. "
                                       "Details in the console.")]
        # The delivery job failed, so RQ keeps it for a retry after a back-off.
        registry = ScheduledJobRegistry("default", connection=app.extensions["redis"])
        [retry_id] = registry.get_job_ids()
        job = Queue("default", connection=app.extensions["redis"]).fetch_job(retry_id)
        assert job is not None and job.func_name == "jobs.notify.deliver"
        # The retry (run now instead of in 30 s) sends only what failed.
        Queue("default", connection=app.extensions["redis"]).enqueue(
            "jobs.notify.deliver", *job.args)
        registry.remove(job)
        worker.run(app, burst=True)
        session.expire_all()
        assert session.get(Notification, failed[0].id).status == SENT  # type: ignore[union-attr]
        assert len([m for m in inbox.messages if m["To"] == "ops@example.com"]) == 1
        assert len(gateway.received()) == 1
        posted = [m["channel"] for m in api.named("chat.postMessage")]
        assert sorted(posted) == ["CALARM001", "U0ONCALL1", "U0ONCALL1"]
        assert failed[0].recipient == "U0ONCALL1"
        refs = session.scalars(select(AlarmDelivery.ref).where(
            AlarmDelivery.alarm_id == alarm.id, AlarmDelivery.ref.is_not(None))).all()
        assert len(refs) == 2  # both Slack posts can be updated in place
    finally:
        api.close()


def test_hourly_monitor_is_kept_on_rqs_scheduler(backend: Backend, session: Session,
                                                 instance_dir: Path) -> None:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x"})
    conn = app.extensions["redis"]
    alarm_jobs.ensure_scheduled(app)
    alarm_jobs.ensure_scheduled(app)  # every sweep asks; one schedule per hour
    scheduled = ScheduledJobRegistry("default", connection=conn)
    times = sorted(scheduled.get_scheduled_time(j) for j in scheduled.get_job_ids())
    next_hour = monitors.hour_floor(utcnow()) + timedelta(hours=1)
    assert len(times) == 2  # the catch-up in a few seconds, and the next hour
    assert times[0] < next_hour <= times[1].replace(tzinfo=next_hour.tzinfo) <= (
        next_hour + timedelta(seconds=alarm_jobs.HOURLY_DELAY_S))
    # Run the catch-up now rather than wait for RQ's scheduler to move it.
    first = min(scheduled.get_job_ids(), key=scheduled.get_scheduled_time)
    job = Queue("default", connection=conn).fetch_job(first)
    assert job is not None and job.func_name == alarm_jobs.HOURLY_JOB
    scheduled.remove(job)
    Queue("default", connection=conn).enqueue(alarm_jobs.HOURLY_JOB)
    assert worker.run(app, burst=True)
    session.expire_all()
    checkpoint = session.get(MonitorCheckpoint, monitors.CAPTCHA)
    assert checkpoint is not None
    assert checkpoint.last_hour == monitors.hour_floor(utcnow()) - timedelta(hours=1)


def test_sending_jobs_report_the_carrier_link(backend: Backend, session: Session, shop: Shop,
                                              instance_dir: Path) -> None:
    """The submit path tells the alarm service what it saw (jobs/sending.py); here the
    outage is a minute old already, so the next refusal raises link_down."""
    import time

    from app.gateways.base import GatewayUnavailable
    from app.models.alarms import Alarm

    class Down(CountingSimulator):
        def submit(self, batch):  # type: ignore[no-untyped-def]
            raise GatewayUnavailable("connection refused")

    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x"})
    app_config.add_contact(shop.ctx, shop.app.sdk_app_id, name="Ops", email="ops@example.com",
                           events=["link"])
    assert shop.codes(["+14155550100"]) == ["Ok"]
    session.commit()
    conn = app.extensions["redis"]
    conn.set(alarms.LINK_DOWN_SINCE, time.time() - 61)
    app.extensions["gateway"] = Down(instance_dir / "sim.jsonl")
    from jobs import runtime
    from jobs import sending as sending_jobs

    runtime.use(app)  # what a worker does before it runs jobs
    with pytest.raises(GatewayUnavailable):  # RQ retries the job; the sweeper re-drives
        sending_jobs.drain()
    session.expire_all()
    assert [a.event for a in session.scalars(select(Alarm).where(
        Alarm.event.like("link%")))] == ["link_down"]
    app.extensions["gateway"] = CountingSimulator(instance_dir / "sim.jsonl")
    sending_jobs.drain()
    session.expire_all()
    assert [a.event for a in session.scalars(select(Alarm).where(
        Alarm.event.like("link%")).order_by(Alarm.id))] == ["link_down", "link_up"]
    assert conn.get(alarms.LINK_DOWN_SINCE) is None


def test_hourly_runs_one_at_a_time(backend: Backend, session: Session,
                                   instance_dir: Path) -> None:
    from jobs import runtime

    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x"})
    runtime.use(app)
    conn = app.extensions["redis"]
    conn.set(alarm_jobs.HOURLY_LOCK, "another-worker", ex=60)
    alarm_jobs.hourly()  # another run holds the lock: nothing done, lock untouched
    session.expire_all()
    assert session.get(MonitorCheckpoint, monitors.CAPTCHA) is None
    assert conn.get(alarm_jobs.HOURLY_LOCK) == b"another-worker"
    conn.delete(alarm_jobs.HOURLY_LOCK)
    alarm_jobs.hourly()
    session.expire_all()
    assert session.get(MonitorCheckpoint, monitors.CAPTCHA) is not None
    assert conn.get(alarm_jobs.HOURLY_LOCK) is None


def test_a_lost_delivery_job_is_redriven_from_the_database(backend: Backend, session: Session,
                                                           shop: Shop,
                                                           instance_dir: Path) -> None:
    """The notification rows are the work; RQ only wakes workers. A delivery job lost
    after the commit (Redis restarted, the enqueue failed) is started again by the
    sweeper's upkeep from the pending rows, once a minute at most."""
    from app.notify.email import read_outbox

    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x"})
    app_config.add_contact(shop.ctx, shop.app.sdk_app_id, name="Ops", email="ops@example.com",
                           events=["task"])
    c = Ctx(session, shop.ctx.actor, Settings.from_config(app.config))
    lost = alarms.raise_task_event(c, backend.redis, shop.app, 8, "failed")
    fresh = alarms.raise_task_event(c, backend.redis, shop.app, 9, "failed")
    assert lost is not None and fresh is not None
    for n in session.scalars(select(Notification).join(
            AlarmDelivery, AlarmDelivery.notification_id == Notification.id).where(
            AlarmDelivery.alarm_id == lost.id)):
        n.created_at = utcnow() - timedelta(minutes=5)
    session.commit()  # and the deferred delivery jobs are never enqueued: lost
    conn = app.extensions["redis"]
    alarm_jobs.ensure_scheduled(app)  # what each worker's sweeper calls every few seconds
    alarm_jobs.ensure_scheduled(app)  # at most once a minute
    for job in Queue("default", connection=conn).jobs:
        if job.func_name == alarm_jobs.HOURLY_JOB:
            job.delete()
    assert [j.func_name for j in Queue("default", connection=conn).jobs] == [
        "jobs.notify.deliver"]
    assert worker.run(app, burst=True)
    session.expire_all()
    sent = {n.subject: n.status for n in session.scalars(select(Notification))
            if n.subject.startswith("Bulk task")}
    # The fresh one's own job may still be on its way: it is left to it.
    assert sent == {"Bulk task #8 failed in Shop": SENT, "Bulk task #9 failed in Shop": "pending"}
    assert [m["subject"] for m in read_outbox(app.config)] == ["Bulk task #8 failed in Shop"]


def test_two_deliveries_of_one_notification_send_it_once(backend: Backend, session: Session,
                                                         shop: Shop) -> None:
    """The redrive and a late original job may hold the same ids: a conditional claim
    lets one of them send."""
    import time

    from app.notify import Channels, Message
    from app.services import notifications

    class Slow:  # a channel that takes a moment, counting what it sends
        name = "email"

        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, message: Message) -> None:
            time.sleep(0.3)
            self.sent.append(message.recipient)

    [row] = notifications.notify(shop.ctx, "task", [("email", "ops@example.com")], "S", "B")
    session.commit()
    channels, slow = Channels(), Slow()
    channels.add(slow)

    def deliver() -> None:
        s = backend.db.sessions()
        try:
            notifications.deliver(s, [row.id], channels)
            s.commit()
        finally:
            s.close()

    at_once(deliver)
    assert slow.sent == ["ops@example.com"]
    session.expire_all()
    done = session.get(Notification, row.id)
    assert done is not None and (done.status, done.attempts) == (SENT, 1)


def test_an_alarm_a_task_raises_is_delivered_at_once(backend: Backend, session: Session,
                                                     shop: Shop, instance_dir: Path) -> None:
    """Found from outside: a threshold alarm raised while a bulk task sent reached its
    contacts about 2.5 minutes late. The task's step cleared every job its unit of work
    asked for (only the drain's wake-up was meant), so the delivery waited for the
    sweeper's re-drive of lost jobs. Here the same worker run delivers it."""
    import io

    from app.notify.email import read_outbox
    from app.services import tasks

    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x",
                      "SIMULATOR_RECEIPT_DELAY_S": 0})
    app_config.add_contact(shop.ctx, shop.app.sdk_app_id, name="Ops", email="ops@example.com",
                           events=["threshold"])
    app_config.set_thresholds(shop.ctx, shop.app.sdk_app_id, "mainland", alarm_threshold=1,
                              daily_limit=None)
    data = "".join(f"1380013{i:04d},{1000 + i}\n" for i in range(3)).encode()
    task, _s = tasks.create_task(shop.ctx, tasks.Draft(shop.app.sdk_app_id,
                                                      shop.templates["mainland"]),
                                 io.BytesIO(data), "list.csv")
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    session.commit()
    enqueue_deferred(app.extensions["redis"], shop.ctx.deferred)
    assert worker.run(app, burst=True)
    session.expire_all()
    assert [(n.subject, n.status) for n in session.scalars(select(Notification))
            if "threshold" in n.subject] == [
        ("Shop passed its daily mainland alarm threshold", SENT)]
    assert "Shop passed its daily mainland alarm threshold" in [
        m["subject"] for m in read_outbox(app.config)]
