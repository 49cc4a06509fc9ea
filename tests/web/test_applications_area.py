"""Issue #14, the Applications area: alarm contacts and security as pages of their own
in the navigation (choose an application on the page, as the hosted console does), and
the alarm history's "unacknowledged only" filter."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.models import AlarmContact
from app.services import alarms, app_config
from app.services.apps import get_app
from tests.conftest import Backend
from tests.helpers import doc, make_app, make_user, root_ctx
from tests.web.conftest import Client, soup, text_of
from tests.web.test_console_nav import _current, _nav


def _add(session: Session, sid: str, name: str, **kw: object) -> int:
    contact = app_config.add_contact(root_ctx(session), sid, name=name,
                                     **{"events": ["threshold"], **kw})  # type: ignore[arg-type]
    session.commit()
    return contact.id


# --- alarm contacts ---------------------------------------------------------------------

def test_alarm_contacts_have_their_own_page_in_the_navigation(root: Client,
                                                              session: Session) -> None:
    first, second = make_app(session, "Alpha"), make_app(session, "Beta")
    _add(session, second, "Night <b>shift</b>", email="night@example.com")
    session.commit()
    areas = _nav(root.get("/"))
    assert areas["Applications"][:4] == ["Application list", "Basic configuration",
                                         "Alarm contacts", "Security"]
    # The page opens on the first application; the others are a choice away.
    landing = root.get("/contacts")
    assert landing.status_code == 302 and landing.location.endswith(f"/apps/{first}/contacts")
    page = root.get(f"/contacts?app={second}", follow_redirects=True)
    assert page.status_code == 200
    assert _current(page) == [("Alarm contacts", "/contacts")]
    assert [o["value"] for o in soup(page).select("#app-picker option")] == [first, second]
    assert soup(page).select_one(f"#app-picker option[value='{second}']").has_attr("selected")
    assert "Night <b>shift</b>" in text_of(page, "#contacts summary")  # escaped, as typed
    assert "<b>shift" not in page.get_data(as_text=True)
    crumbs = text_of(page, ".crumbs")
    assert crumbs == "Applications Alarm contacts Beta"
    # Add, edit, delete from this page: htmx swaps the section, plain forms come back here.
    added = root.post(f"/apps/{second}/contacts", {"name": "Day", "email": "day@example.com",
                                                    "events": ["threshold"], "back": "contacts"})
    assert added.status_code == 302 and added.location.endswith(f"/apps/{second}/contacts")
    day = session.scalar(select(AlarmContact.id).where(AlarmContact.name == "Day"))
    edited = root.post(f"/apps/{second}/contacts/{day}", {
        "contact_id": day, "name": "Day team", "email": "day@example.com",
        "events": ["threshold", "package"], "back": "contacts"}, htmx=True)
    assert edited.status_code == 200 and "Day team" in text_of(edited, "#contacts")
    # The swapped section still brings its forms back here.
    assert soup(edited).select("#contacts form input[name=back][value=contacts]")
    bad = root.post(f"/apps/{second}/contacts/{day}", {
        "contact_id": day, "name": "", "back": "contacts"})
    assert bad.status_code == 422 and _current(bad) == [("Alarm contacts", "/contacts")]
    gone = root.post(f"/apps/{second}/contacts/{day}/delete", {"back": "contacts"})
    assert gone.status_code == 302 and gone.location.endswith(f"/apps/{second}/contacts")
    assert "Day team" not in root.get(f"/apps/{second}/contacts").get_data(as_text=True)
    # Asked for an application that is not there: said so, no stack trace.
    assert root.get("/apps/1499999999/contacts").status_code == 404
    assert root.get("/contacts?app=<script>").status_code == 302  # ignored: the first one


def test_alarm_contacts_page_follows_the_policies(app: Flask, client: Client,
                                                  session: Session) -> None:
    mine, theirs = make_app(session, "Mine"), make_app(session, "Theirs")
    _add(session, mine, "Ops", email="ops@example.com")
    make_user(session, "reader@example.com", policies=[doc(
        ("allow", ["sms:DescribeNewsReceiver", "sms:DescribeAppList"], [f"sms:app/{mine}"]))])
    make_user(session, "lister@example.com", policies=[doc(
        ("allow", ["sms:DescribeAppList", "sms:DescribeAppInfo"], ["sms:app/*"]))])
    session.commit()
    client.login("reader@example.com")
    assert "Alarm contacts" in _nav(client.get("/"))["Applications"]
    page = client.get("/contacts", follow_redirects=True)
    assert page.status_code == 200
    assert [o["value"] for o in soup(page).select("#app-picker option")] == [mine]
    assert "Ops" in text_of(page, "#contacts")
    assert not soup(page).select("#contacts form")  # reads, changes nothing
    assert client.get(f"/apps/{theirs}/contacts").status_code == 404
    refused = client.post(f"/apps/{mine}/contacts", {"name": "X", "email": "x@example.com",
                                                      "events": ["threshold"]})
    assert refused.status_code == 403  # the service says no, whatever the page showed
    lister = Client(app.test_client())
    lister.login("lister@example.com")
    assert "Alarm contacts" not in _nav(lister.get("/"))["Applications"]
    assert lister.get("/contacts").status_code == 403
    assert lister.get(f"/apps/{mine}/contacts").status_code == 403
    # Nor does the application's own page show them to someone who may not read them.
    detail = lister.get(f"/apps/{mine}")
    assert detail.status_code == 200 and "Ops" not in text_of(detail, "#contacts")


def test_no_application_yet_says_what_to_do(root: Client) -> None:
    for path in ("/contacts", "/security", "/configuration"):
        page = root.get(path)
        assert page.status_code == 200, path
        assert "No applications yet" in text_of(page, "main")
        assert soup(page).select_one("main a[href='/apps']"), path


# --- security -----------------------------------------------------------------------------

def test_security_is_reachable_from_the_navigation(app: Flask, root: Client,
                                                   session: Session) -> None:
    first, second = make_app(session, "Alpha"), make_app(session, "Beta")
    make_user(session, "watcher@example.com", policies=[doc(
        ("allow", ["sms:DescribeAlarms"], [f"sms:app/{second}"]))])
    make_user(session, "lister@example.com", policies=[doc(
        ("allow", ["sms:DescribeAppList", "sms:DescribeAppInfo"], ["sms:app/*"]))])
    session.commit()
    link = soup(root.get("/")).select_one("#sidenav a:-soup-contains('Security')")
    assert link is not None and link["href"] == "/security"
    landing = root.get("/security")
    assert landing.status_code == 302 and landing.location.endswith(f"/apps/{first}/security")
    page = root.get(f"/security?app={second}", follow_redirects=True)
    assert _current(page) == [("Security", "/security")]
    assert "Beta" in text_of(page, "h1")
    assert [o["value"] for o in soup(page).select("#app-picker option")] == [first, second]
    assert text_of(page, ".crumbs") == "Applications Security Beta"
    # Allowed on one application: only that one is offered.
    watcher = Client(app.test_client())
    watcher.login("watcher@example.com")
    assert _nav(watcher.get("/"))["Applications"][0] == "Security"
    opened = watcher.get("/security", follow_redirects=True)
    assert opened.status_code == 200
    assert [o["value"] for o in soup(opened).select("#app-picker option")] == [second]
    assert watcher.get(f"/apps/{first}/security").status_code == 404
    # Without the right to read alarms: not in the navigation, and refused.
    lister = Client(app.test_client())
    lister.login("lister@example.com")
    assert "Security" not in _nav(lister.get("/"))["Applications"]
    assert lister.get("/security").status_code == 403
    assert "/security" not in lister.get(f"/apps/{first}").get_data(as_text=True)


def test_basic_configuration_opens_an_application_s_settings(root: Client,
                                                             session: Session) -> None:
    first, second = make_app(session, "Alpha"), make_app(session, "Beta")
    session.commit()
    landing = root.get("/configuration")
    assert landing.status_code == 302 and landing.location.endswith(f"/apps/{first}")
    assert root.get(f"/configuration?app={second}").location.endswith(f"/apps/{second}")
    # The application's page offers the others, as the contacts and security pages do.
    page = root.get(f"/apps/{second}")
    picker = soup(page).select_one("#app-picker")
    assert picker is not None and picker["action"] == "/configuration"
    assert [o["value"] for o in picker.select("option")] == [first, second]
    assert picker.select_one(f"option[value='{second}']").has_attr("selected")


# --- the alarm history: unacknowledged only --------------------------------------------------

def test_alarm_history_shows_the_unacknowledged_only(root: Client, session: Session,
                                                     backend: Backend) -> None:
    sid = make_app(session)
    session.commit()
    c = root_ctx(session)
    app = get_app(c, sid)
    raised = [alarms.raise_task_event(c, backend.redis, app, n, "failed") for n in (1, 2, 3)]
    told = alarms.raise_alarm(c, None, "review", period="r", ttl_s=0, app=app,
                              subject="Template approved", body="Approved.", sms="sms")
    session.commit()
    assert all(raised) and told is not None
    handled = raised[0]
    assert handled is not None
    alarms.acknowledge(c, handled.id)
    session.commit()
    page = root.get("/alarms")
    box = soup(page).select_one("#alarm-filters input[type=checkbox][name=unacknowledged]")
    assert box is not None and not box.has_attr("checked")
    assert len(soup(page).select("tbody tr[id^=alarm-]")) == 4
    only = root.get("/alarms?unacknowledged=1")
    rows = [r["id"] for r in soup(only).select("tbody tr[id^=alarm-]")]
    # Review results are told, not handled: never waiting for anyone.
    assert rows == [f"alarm-{a.id}" for a in reversed(raised[1:]) if a]
    assert soup(only).select_one("#alarm-filters input[name=unacknowledged]").has_attr("checked")
    assert text_of(only, "h1 .muted") == "2"
    # The dashboard's open alarms lead here, and count the same.
    dash = soup(root.get("/"))
    tile = dash.select_one("a[href='/alarms?unacknowledged=1']")
    assert tile is not None and "2" in tile.get_text()
    bad = root.get("/alarms?unacknowledged=maybe")
    assert bad.status_code == 200 and "not understood" in bad.get_data(as_text=True)


def test_acknowledging_keeps_the_list_being_worked_through(root: Client, session: Session,
                                                           backend: Backend) -> None:
    """Working down the unacknowledged alarms, each acknowledge comes back to that list
    (not to the one alarm), and only to a page of the alarm history."""
    sid = make_app(session)
    session.commit()
    c = root_ctx(session)
    app = get_app(c, sid)
    first, second = (alarms.raise_task_event(c, backend.redis, app, n, "stopped")
                     for n in (11, 12))
    session.commit()
    assert first is not None and second is not None
    listing = root.get("/alarms?unacknowledged=1")
    form = soup(listing).select_one(f"#alarm-{first.id} form")
    assert form is not None
    back = form.select_one("input[name=back]")
    assert back is not None and back["value"] == "/alarms?unacknowledged=1"
    done = root.post(f"/alarms/{first.id}/acknowledge", {"back": back["value"]})
    assert done.status_code == 302 and done.location.endswith("/alarms?unacknowledged=1")
    rows = soup(root.get(done.location)).select("tbody tr[id^=alarm-]")
    assert [r["id"] for r in rows] == [f"alarm-{second.id}"]
    for elsewhere in ("https://example.org/alarms", "//example.org/alarms", "/apps", ""):
        moved = root.post(f"/alarms/{second.id}/acknowledge", {"back": elsewhere})
        assert moved.location.endswith(f"/alarms?alarm={second.id}"), elsewhere


def test_adding_a_contact_one_may_not_read_answers_without_error(app: Flask, client: Client,
                                                                 session: Session) -> None:
    """Allowed to add contacts and read the application, not to list its contacts: the
    change is made and the section says why it shows none (not an error after the fact)."""
    sid = make_app(session)
    make_user(session, "adder@example.com", policies=[doc(
        ("allow", ["sms:AddNewsReceiver", "sms:DescribeAppInfo"], [f"sms:app/{sid}"]))])
    session.commit()
    client.login("adder@example.com")
    client.get(f"/apps/{sid}")
    added = client.post(f"/apps/{sid}/contacts", {"name": "Ops", "email": "ops@example.com",
                                                  "events": ["threshold"]}, htmx=True)
    assert added.status_code == 200
    assert "Alarm contact added" in text_of(added, "#contacts .notice")
    assert "do not let you see" in text_of(added, "#contacts")
    assert session.scalar(select(AlarmContact.name)) == "Ops"


# --- every section of an application's page follows its own read right ----------------------

def _configured(session: Session) -> str:
    """An application with something to see in every section."""
    sid = make_app(session)
    c = root_ctx(session)
    app_config.set_thresholds(c, sid, "mainland", alarm_threshold=7001, daily_limit=9001)
    app_config.set_country(c, sid, iso_code="DE", alarm_threshold=43, daily_limit=54)
    app_config.set_callback(c, sid, "https://93.184.216.34/hidden-callback")
    app_config.set_frequency(c, sid, {"30s": (True, 1), "hour": (True, 77), "day": (True, 88)})
    app_config.add_allowlist(c, sid, "+8613800007777")
    session.commit()
    return sid


# section → (its read right, something only a reader should see)
_SECRETS = {
    "thresholds": ("DescribeWarningThreshold", "9001"),
    "countries": ("DescribeCountryConfig", "<code>DE</code>"),
    "callback": ("DescribeCallbackInfo", "hidden-callback"),
    "frequency": ("DescribeFreqRule", "77"),
    "allowlist": ("DescribeFrequencyWhitelist", "+8613800007777"),
}


def _html(resp: TestResponse, name: str) -> str:
    """A section's markup without its CSRF tokens (random text a short secret may be in)."""
    section = soup(resp).select_one(f"#{name}")
    assert section is not None, name
    for token in section.select("input[name=csrf_token]"):
        token.decompose()
    return str(section)


def test_each_section_is_shown_only_to_those_who_may_read_it(app: Flask, client: Client,
                                                              session: Session) -> None:
    sid = _configured(session)
    make_user(session, "opener@example.com", policies=[doc(
        ("allow", ["sms:DescribeAppInfo"], [f"sms:app/{sid}"]))])
    make_user(session, "reader@example.com", policies=[doc(
        ("allow", ["sms:DescribeAppInfo"] + [f"sms:{r}" for r, _ in _SECRETS.values()],
         [f"sms:app/{sid}"]))])
    session.commit()
    client.login("opener@example.com")
    page = client.get(f"/apps/{sid}")
    assert page.status_code == 200
    for name, (_right, secret) in _SECRETS.items():
        section = text_of(page, f"#{name}")
        assert secret not in section, name
        assert "do not let you see" in section, name
        assert secret not in _html(page, name), name  # nor in a field
    reader = Client(app.test_client())
    reader.login("reader@example.com")
    shown = reader.get(f"/apps/{sid}")
    for name, (_right, secret) in _SECRETS.items():
        assert secret in _html(shown, name), name
        assert "do not let you see" not in text_of(shown, f"#{name}"), name


# section → (the change right, where the change is sent, the form, the notice)
_CHANGES = {
    "thresholds": ("ModifyWarningThreshold", "thresholds/mainland",
                   {"mainland_alarm_threshold": "10", "mainland_daily_limit": "20"},
                   "Mainland thresholds saved."),
    "countries": ("ModifyCountryConfig", "countries",
                  {"iso_code": "fr", "alarm_threshold": "", "daily_limit": ""}, "FR saved."),
    "callback": ("ModifyCallbackInfo", "callback",
                 {"status_callback_url": "https://93.184.216.34/new"}, "Status callback saved."),
    "frequency": ("ModifyFreqRule", "frequency",
                  {"30s_enabled": "on", "30s_limit": "1", "hour_limit": "5", "day_limit": "9"},
                  "Frequency limits saved."),
    "allowlist": ("AddFrequencyWhiteList", "allowlist", {"numbers": "+8613800008888"},
                  "Added 1 new numbers."),
    "contacts": ("AddNewsReceiver", "contacts",
                 {"name": "Ops", "email": "ops@example.com", "events": ["threshold"]},
                 "Alarm contact added."),
}


def test_a_change_right_alone_answers_with_its_section(app: Flask, session: Session) -> None:
    """Allowed to change a section but not to read it, nor the application: the change is
    made and the section answers (saying it cannot show the settings), not a 403 after."""
    sid = _configured(session)
    for name, (right, _path, _form, _notice) in _CHANGES.items():
        make_user(session, f"{name}@example.com", policies=[doc(
            ("allow", [f"sms:{right}"], [f"sms:app/{sid}"]))])
    session.commit()
    for name, (_right, path, form, notice) in _CHANGES.items():
        changer = Client(app.test_client())
        changer.login(f"{name}@example.com")
        answer = changer.post(f"/apps/{sid}/{path}", form, htmx=True)
        assert answer.status_code == 200, name
        assert notice in text_of(answer, f"#{name} .notice"), name
        assert "do not let you see" in text_of(answer, f"#{name}"), name
        secret = _SECRETS[name][1] if name in _SECRETS else "Ops"
        assert secret not in _html(answer, name), name
    app_row = get_app(root_ctx(session), sid)
    session.refresh(app_row)
    assert app_row.mainland_daily_limit == 20 and app_row.freq_hour_limit == 5
    assert app_row.status_callback_url == "https://93.184.216.34/new"
    assert "FR" in {c.iso_code for c in app_row.countries}
    assert "+8613800008888" in {e.phone_number for e in app_row.allowlist}


def test_a_change_right_alone_answers_a_plain_form_too(client: Client, session: Session) -> None:
    """Without htmx the answer is usually the application's page again, which a user who
    may only change one section cannot open: the section answers in place instead."""
    sid = _configured(session)
    make_user(session, "hook@example.com", policies=[doc(
        ("allow", ["sms:ModifyCallbackInfo"], [f"sms:app/{sid}"]))])
    session.commit()
    client.login("hook@example.com")
    answer = client.post(f"/apps/{sid}/callback",
                         {"status_callback_url": "https://93.184.216.34/plain"})
    assert answer.status_code == 200
    assert "Status callback saved." in text_of(answer, "#callback .notice")
    for name, (_right, secret) in _SECRETS.items():
        assert secret not in _html(answer, name), name
    assert get_app(root_ctx(session), sid).status_callback_url == "https://93.184.216.34/plain"
