"""Issue #14: the overview dashboard (the landing page) and its figures."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Account, Application, Message
from app.models.sending import DELIVERED, FAILED, SUBMITTED
from app.services import alarms, console, packages, rollups, tasks
from app.services import apps as apps_service
from tests.conftest import Backend
from tests.helpers import doc, make_user
from tests.sending.conftest import Shop
from tests.web.conftest import Client, soup, text_of


def _figure(resp: object, name: str) -> str:
    node = soup(resp).select_one(f"[data-figure='{name}']")  # type: ignore[arg-type]
    assert node is not None, name
    return " ".join(node.get_text(" ").split())


def test_figures_after_a_few_sends(root: Client, shop: Shop, session: Session) -> None:
    shop.send(["+14155550101", "+14155550102", "+14155550103"])
    shop.send(["+999"])  # refused by a check: a request, never a success
    ids = session.scalars(select(Message.id).where(Message.error_code.is_(None))
                          .order_by(Message.id)).all()
    session.execute(update(Message).where(Message.id == ids[0])
                    .values(status=DELIVERED, fee=2, submitted_at=utcnow()))
    session.execute(update(Message).where(Message.id == ids[1])
                    .values(status=SUBMITTED, fee=1, submitted_at=utcnow()))
    session.execute(update(Message).where(Message.id == ids[2])  # the carrier refused it
                    .values(status=FAILED, fee=1, submitted_at=utcnow()))
    rollups.rebuild(session)  # the rows were moved by hand: count them again
    session.commit()
    page = root.get("/")
    assert _figure(page, "international-requests") == "4"
    assert _figure(page, "international-successes") == "2"
    assert _figure(page, "international-billed") == "3"
    assert _figure(page, "international-rate") == "50.0%"
    assert _figure(page, "mainland-requests") == "0"
    assert _figure(page, "mainland-rate") == "\u2013"  # nothing sent: a dash, not 0 %
    # Each figure links to its page: the region's statistics.
    link = soup(page).select_one("[data-figure='international-requests'] a")
    assert link is not None and link["href"] == "/stats?region=international"
    assert len(soup(page).select("#fig-international ~ ol.trend li")) == console.TREND_DAYS
    assert _figure(page, "reviews") == "1"  # the shop's template still pending
    assert soup(page).select_one("[data-figure='reviews'] a")["href"] == "/reviews"  # type: ignore[index]
    assert _figure(page, "link-state") == "Up"


def test_it_refreshes_itself_as_a_fragment(root: Client, shop: Shop, session: Session) -> None:
    page = soup(root.get("/"))
    block = page.select_one("#dashboard")
    assert block is not None and block["hx-trigger"].startswith("every ")  # type: ignore[union-attr]
    assert "No messages yet today" in block.get_text()
    shop.send(["+14155550101"])
    session.commit()
    fragment = root.get("/", htmx=True)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith("<div id=\"dashboard\"")
    assert _figure(fragment, "international-requests") == "1"
    assert "No messages yet today" not in body


def test_credit_and_messages_waiting(root: Client, shop: Shop, session: Session) -> None:
    packages.add(shop.ctx, name="Starter", size="1000", expires_on="2099-12-31")
    shop.send(["+14155550101"])
    session.execute(update(Message).values(created_at=utcnow() - timedelta(minutes=5)))
    session.commit()
    page = root.get("/")
    assert _figure(page, "credit-balance") == "1000"
    assert _figure(page, "credit-days") == "No recent use"  # no mainland use this week
    # Waiting messages are a figure of their own; the link's state is its alarms' (none).
    assert _figure(page, "link-state") == "Up"
    assert _figure(page, "link-waiting") == "1"
    assert _figure(page, "gateway") == "simulator"


def test_without_any_package_mainland_sending_is_not_metered(root: Client, shop: Shop,
                                                            session: Session) -> None:
    """First use: no package was ever added, and mainland messages go out (sending is
    metered only once packages are in use), so the tile must not say they fail, nor
    count the days left of a balance nobody uses."""
    assert shop.codes(["13800000000"], template="mainland") == ["Ok"]
    session.execute(update(Message).values(fee=1, status=SUBMITTED))
    rollups.rebuild(session)
    session.commit()
    page = root.get("/")
    tile = text_of(page, "section[aria-labelledby='fig-credit']")
    assert "sends fail" not in tile
    assert "not metered" in tile
    assert _figure(page, "credit-days") == "Not metered"
    # Once a package exists (here used up), the warning is true again.
    packages.add(shop.ctx, name="Starter", size="1", expires_on="2099-12-31")
    session.commit()
    assert shop.codes(["13800000001"], template="mainland") == ["Ok"]
    session.commit()
    page = root.get("/")
    assert "mainland sends fail until a package is added" in text_of(
        page, "section[aria-labelledby='fig-credit']")
    assert _figure(page, "credit-days") == "0"


def test_days_left_at_the_current_rate(shop: Shop, session: Session) -> None:
    packages.add(shop.ctx, name="Starter", size="700", expires_on="2099-12-31")
    shop.send(["13800000000"], template="mainland")
    session.execute(update(Message).values(fee=70, status=SUBMITTED))  # 70 items in a week
    rollups.rebuild(session)
    credit = console.credit(shop.ctx)
    assert credit.used_per_day == 10
    assert credit.days_left == credit.balance // 10


def test_what_a_policy_hides(app: Flask, shop: Shop, session: Session) -> None:
    make_user(session, "apps@example.com", policies=[
        doc(("allow", ["sms:DescribeAppList"], ["sms:app/*"]))])
    make_user(session, "stats@example.com", policies=[
        doc(("allow", ["sms:DescribeStatistics"], ["sms:app/1400000099"]))])
    shop.send(["+14155550101"])
    session.commit()
    only_apps = Client(app.test_client())
    only_apps.login("apps@example.com")
    page = only_apps.get("/")
    assert page.status_code == 200
    assert not soup(page).select("[data-figure]")
    assert "Your policies show no figures" in text_of(page, "#dashboard")
    other_app = Client(app.test_client())  # statistics of another application only
    other_app.login("stats@example.com")
    assert _figure(other_app.get("/"), "international-requests") == "0"


# --- bulk tasks running now, and open alarms ------------------------------------------

def _running_task(shop: Shop, session: Session, name: str, rows: int = 4,
                  sdk_app_id: str | None = None) -> int:
    """A confirmed task (sending) with one batch of two turned into messages."""
    data = "".join(f"1380013{i:04d},{1000 + i}\n" for i in range(rows)).encode()
    task, _summary = tasks.create_task(shop.ctx, tasks.Draft(
        sdk_app_id or shop.app.sdk_app_id, shop.templates["mainland"], name=name),
        io.BytesIO(data), "list.csv")
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=2)
    shop.ctx.deferred.clear()  # no worker here: the test moves the messages itself
    session.commit()
    return task.id


def _carrier_took(session: Session, task_id: int, n: int) -> None:
    ids = session.scalars(select(Message.id).where(Message.task_id == task_id)
                          .order_by(Message.id).limit(n)).all()
    session.execute(update(Message).where(Message.id.in_(ids))
                    .values(status=SUBMITTED, submitted_at=utcnow()))
    rollups.rebuild(session)  # moved by hand: the figures counted again
    session.commit()


def _alarm(shop: Shop, subject: str, app: Application | None = None,
           event: str = "threshold") -> int:
    alarm = alarms.raise_alarm(shop.ctx, None, event, period=subject, ttl_s=60, app=app,
                               subject=subject, body="body", sms="sms")
    assert alarm is not None
    shop.ctx.deferred.clear()
    return alarm.id


def test_tasks_running_now_with_their_progress(root: Client, shop: Shop,
                                               session: Session) -> None:
    assert "fig-tasks" in root.get("/").get_data(as_text=True)  # the tile, empty
    assert "No bulk task is sending" in text_of(root.get("/"), "#running-tasks")
    running = _running_task(shop, session, "<b>Spring</b> sale")
    waiting, _s = tasks.create_task(shop.ctx, tasks.Draft(
        shop.app.sdk_app_id, shop.templates["mainland"], name="Not confirmed"),
        io.BytesIO(b"13800138000,1234\n"), "list.csv")
    session.commit()
    _carrier_took(session, running, 1)
    page = root.get("/")
    tile = soup(page).select_one("#running-tasks")
    assert tile is not None
    assert _figure(page, "tasks-running") == "1"
    links = [a["href"] for a in tile.select("li a")]
    assert links == [f"/tasks/{running}"]  # not the unconfirmed one
    assert f"/tasks/{waiting.id}" not in str(tile)
    assert "<b>Spring</b> sale" in tile.get_text() and "<b>" not in str(tile.select_one("li a"))
    bar = tile.select_one("progress")
    assert bar is not None and bar["value"] == "25" and bar.get("aria-label")
    assert "1 of 4" in " ".join(tile.get_text(" ").split())
    # It updates itself while the dashboard is open, faster than the other figures.
    assert tile["hx-get"] == "/dashboard/tasks" and "every 2s" in tile["hx-trigger"]  # type: ignore[operator]
    _carrier_took(session, running, 2)
    fragment = root.get("/dashboard/tasks", htmx=True)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body
    assert body.lstrip().startswith('<section class="card tile" id="running-tasks"')
    assert soup(fragment).select_one("progress")["value"] == "50"  # type: ignore[index]
    # Finished: off the tile, and the tile stops asking.
    tasks.stop(shop.ctx, running)
    session.commit()
    done = soup(root.get("/dashboard/tasks", htmx=True)).select_one("#running-tasks")
    assert done is not None and not done.select("li") and not done.get("hx-trigger")


def test_open_alarms_count_and_the_latest(root: Client, shop: Shop, session: Session) -> None:
    assert "No open alarms" in text_of(root.get("/"), "#open-alarms")
    first = _alarm(shop, "Threshold <script>x</script> reached", shop.app)
    handled = _alarm(shop, "Handled already", shop.app)
    _alarm(shop, "A test alarm", shop.app, event="test")  # told, never handled: not open
    latest = [_alarm(shop, f"Limit {n} reached", shop.app) for n in range(4)]
    alarms.acknowledge(shop.ctx, handled)
    shop.ctx.deferred.clear()
    session.commit()
    page = root.get("/")
    tile = soup(page).select_one("#open-alarms")
    assert tile is not None
    assert _figure(page, "alarms-open") == "5"
    # It leads to the same alarms: the history's unacknowledged only.
    assert soup(page).select_one("[data-figure='alarms-open'] a")["href"] == (  # type: ignore[index]
        "/alarms?unacknowledged=1")
    shown = [a["href"] for a in tile.select("li a")]
    assert shown == [f"/alarms?alarm={i}" for i in reversed(latest[1:])]  # the latest 3
    assert f"/alarms?alarm={first}" not in shown
    assert "<script>" not in str(tile)
    assert "Limit 3 reached" in tile.get_text()


def test_tiles_show_only_the_applications_a_policy_allows(app: Flask, shop: Shop,
                                                          session: Session) -> None:
    other, _key = apps_service.create_app(shop.ctx, name="Other")
    session.commit()
    mine = _running_task(shop, session, "Mine")
    theirs = _running_task(shop, session, "Theirs", sdk_app_id=other.sdk_app_id)
    _alarm(shop, "Alarm of mine", shop.app)
    _alarm(shop, "Alarm of theirs", other)
    _alarm(shop, "Account-wide alarm", None, event="package_low")
    session.commit()
    sid = shop.app.sdk_app_id
    make_user(session, "scoped@example.com", policies=[doc(
        ("allow", ["sms:DescribeSendTasks", "sms:DescribeAlarms"], [f"sms:app/{sid}"]))])
    make_user(session, "blind@example.com", policies=[
        doc(("allow", ["sms:DescribeAppList"], ["sms:app/*"]))])
    session.commit()
    scoped = Client(app.test_client())
    scoped.login("scoped@example.com")
    page = scoped.get("/")
    assert [a["href"] for a in soup(page).select("#running-tasks li a")] == [f"/tasks/{mine}"]
    assert f"/tasks/{theirs}" not in page.get_data(as_text=True)
    assert _figure(page, "alarms-open") == "1"
    assert "Alarm of mine" in text_of(page, "#open-alarms")
    assert scoped.get("/dashboard/tasks", htmx=True).status_code == 200
    blind = Client(app.test_client())
    blind.login("blind@example.com")
    page = blind.get("/")
    assert soup(page).select_one("#running-tasks") is None
    assert soup(page).select_one("#open-alarms") is None
    assert blind.get("/dashboard/tasks", htmx=True).status_code == 403


def test_the_link_tile_shows_what_the_link_alarms_record(root: Client, shop: Shop,
                                                         session: Session,
                                                         backend: Backend) -> None:
    """The carrier link's state is the one its link-down / link-up alarms record, not a
    guess from recent messages: down since the outage began, then up again."""
    shop.send(["+14155550101"])  # a message taken lately: the old guess said "Up"
    session.execute(update(Message).values(submitted_at=utcnow()))
    session.commit()
    began = (utcnow() - timedelta(minutes=10)).replace(microsecond=0)
    deferred: list = []

    def seen(up: bool, seconds: int) -> list:
        return alarms.link_seen(session, backend.redis, up, shop.ctx.settings, deferred,
                                now=began + timedelta(seconds=seconds))

    assert seen(False, 0) == []
    [down] = seen(False, 90)  # down for over a minute: the alarm
    session.commit()
    page = root.get("/")
    assert _figure(page, "link-state") == f"Down since {_shown(session, began)}"
    assert soup(page).select_one(".status-link-down") is not None
    [up] = seen(True, 300)
    session.commit()
    page = root.get("/")
    assert _figure(page, "link-state") == "Up"
    assert f"Back up since {_shown(session, up.created_at)}" in text_of(page, "#fig-link + dl + p")
    assert down.event == "link_down" and up.event == "link_up"


def _shown(session: Session, moment: datetime) -> str:
    """A time as the page shows it, in the account's zone."""
    zone = ZoneInfo(session.scalars(select(Account.timezone)).one())
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
