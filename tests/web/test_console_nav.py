"""Issue #14: the navigation by area, driven by app/web/nav.py and the user's policies."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from app.services.access import Actor, parse_policy
from app.services.console import ROOT, can_reach
from tests.helpers import doc, make_app, make_user
from tests.web.conftest import Client, soup


def _nav(resp: object) -> dict[str, list[str]]:
    """Area label → link labels, as shown."""
    page = soup(resp)  # type: ignore[arg-type]
    areas: dict[str, list[str]] = {}
    for node in page.select("#sidenav > details, #sidenav > a"):
        if node.name == "a":
            areas[node.get_text(" ", strip=True).split(" ")[0]] = [node.get_text(" ", strip=True)]
        else:
            label = node.select_one("summary").get_text(strip=True)
            areas[label] = [" ".join(a.get_text(" ").split()) for a in node.select("a")]
    return areas


def _current(resp: object) -> list[tuple[str, str]]:
    return [(" ".join(a.get_text(" ").split()), str(a["href"]))
            for a in soup(resp).select("#sidenav a[aria-current]")]  # type: ignore[arg-type]


def test_root_sees_every_area_with_the_current_place_marked(root: Client) -> None:
    resp = root.get("/")
    areas = _nav(resp)
    assert list(areas) == ["Overview", "Mainland China", "International", "Statistics",
                           "Marketing", "Applications", "General", "Reviews", "Access",
                           "Settings"]
    assert areas["Access"] == ["Users", "Policies", "Audit log"]
    assert areas["Mainland China"] == ["Qualifications", "Signatures", "Body templates",
                                       "Bulk tasks"]
    assert areas["Statistics"] == ["Mainland China", "International", "Failure analysis",
                                   "Receipt analysis", "Countries/regions", "Captcha volume",
                                   "SMS log"]
    assert areas["Marketing"] == ["Customers and groups"]
    assert "Alarm history" in areas["Applications"]
    assert _current(resp) == [("Dashboard", "/")]
    assert _current(root.get("/content/templates?region=international")) == [
        ("Body templates", "/content/templates?region=international")]
    assert _current(root.get("/content/templates")) == [  # mainland is the default
        ("Body templates", "/content/templates?region=mainland")]
    assert _current(root.get("/policies/new")) == [("Policies", "/policies")]
    assert _current(root.get("/packages")) == [("Credit packages", "/packages")]
    # The reply callback lives on the settings page: linked, but Settings is the place.
    assert _current(root.get("/settings")) == [("Settings", "/settings")]
    assert soup(root.get("/settings")).select_one("#reply-callback input[name=reply_callback_url]")


def test_detail_pages_mark_their_list_and_keep_their_region(root: Client, session: Session
                                                             ) -> None:
    sdk_app_id = make_app(session)
    session.commit()
    # An application's page is the Applications area's Basic configuration, not its list.
    assert _current(root.get(f"/apps/{sdk_app_id}")) == [("Basic configuration", "/configuration")]
    bad = root.post(f"/apps/{sdk_app_id}/thresholds/mainland",
                    {"mainland_alarm_threshold": "x", "mainland_daily_limit": ""})
    assert bad.status_code == 422  # a plain form's answer: the same page, the same mark
    assert _current(bad) == [("Basic configuration", "/configuration")]
    root.post("/content/templates/new?region=international", {
        "name": "Hello", "sms_type": "notification", "content": "Hello {1}"})
    page = soup(root.get("/content/templates?region=international"))
    link = page.select_one("main a[href^='/content/templates/']")
    assert link is not None
    detail = root.get(str(link["href"]))
    assert _current(detail) == [("Body templates", "/content/templates?region=international")]
    crumbs = soup(detail).select_one(".crumbs")
    assert crumbs is not None and "Body templates" in crumbs.get_text()


def test_items_a_policy_does_not_allow_are_hidden(app: Flask, client: Client,
                                                  session: Session) -> None:
    make_user(session, "rev@example.com", presets=["SMSReviewer"])
    sdk_app_id = make_app(session)
    make_user(session, "one@example.com", policies=[
        doc(("allow", ["sms:DescribeAppList", "sms:DescribeAppInfo"], [f"sms:app/{sdk_app_id}"]))])
    session.commit()
    client.login("rev@example.com")
    areas = _nav(client.get("/"))
    assert "Access" not in areas  # root only
    assert "Send a test message" not in areas["Overview"]  # no sms:SendSms
    assert "Reviews" in areas
    other = Client(app.test_client())
    other.login("one@example.com")
    areas = _nav(other.get("/"))
    # Allowed on one named application: its list is reachable, nothing else is.
    assert areas == {"Overview": ["Dashboard"],
                     "Applications": ["Application list", "Basic configuration"]}
    assert other.get("/apps").status_code == 200


def test_every_link_shown_opens(app: Flask, shop: object, session: Session) -> None:
    """Whatever a policy allows, no link in the navigation leads to a refusal."""
    sdk_app_id = "1400000001"
    users = {
        "scoped@example.com": [doc(("allow", ["sms:*"], [f"sms:app/{sdk_app_id}"]))],
        "reader@example.com": [doc(("allow", ["sms:Describe*"], ["sms:app/*"]))],
        "sender@example.com": [doc(("allow", ["sms:SendSms", "sms:DescribeAppList"],
                                    [f"sms:app/{sdk_app_id}"]))],
        "nothing@example.com": [doc(("allow", ["sms:DescribeAlarms"], ["sms:app/1400000099"]))],
    }
    for email, policies in users.items():
        make_user(session, email, policies=policies)
    session.commit()
    for email in users:
        client = Client(app.test_client())
        client.login(email)
        links = [str(a["href"]) for a in soup(client.get("/")).select("#sidenav a")]
        assert links[0] == "/"
        for link in links:  # those opening on one application lead to it
            assert client.get(link, follow_redirects=True).status_code == 200, (email, link)
        if email == "scoped@example.com":
            assert "/messages" in links and "/send" in links
            assert not any(link.startswith("/content/") for link in links)

def test_reach_follows_the_policy_service() -> None:
    def actor(*statements: tuple[str, list[str], list[str]]) -> Actor:
        return Actor(1, "x", statements=parse_policy(doc(*statements)))

    one = actor(("allow", ["sms:Describe*"], ["sms:app/1400000001"]))
    assert can_reach(one, "DescribeAppList", per_app=True)
    assert not can_reach(one, "SendSms", per_app=True)
    # Account-wide pages (content, mute list...) need the right on every application.
    assert not can_reach(one, "DescribeSmsTemplateList")
    denied = actor(("allow", ["sms:*"], ["sms:app/1400000001"]),
                   ("deny", ["sms:SendSms"], ["sms:app/*"]))
    assert not can_reach(denied, "SendSms", per_app=True)
    assert can_reach(denied, "ModifyAppInfo", per_app=True)
    assert not can_reach(one, ROOT) and can_reach(Actor(1, "r", is_root=True), ROOT)


def test_every_area_links_its_pages(app: Flask, root: Client, session: Session) -> None:
    """Items whose endpoint is registered appear by themselves (the pages of tasks,
    statistics, groups and alarms landed after the navigation)."""
    client = root
    areas = _nav(client.get("/"))
    assert areas["Mainland China"][-1] == "Bulk tasks"
    assert areas["International"][-1] == "Bulk tasks"
    assert areas["Statistics"][:2] == ["Mainland China", "International"]
    links = [str(a["href"]) for a in soup(client.get("/")).select("#sidenav a")]
    assert "/tasks?region=mainland" in links and "/tasks?region=international" in links
    # Pages about one application at a time are linked once; they offer the others.
    assert {"/configuration", "/contacts", "/security"} <= set(links)
    assert not any(link.startswith("/apps/") for link in links)
    with app.test_request_context("/tasks/5?region=international"):
        from flask import request
        from flask_login import login_user

        from app.models import User
        from app.web.nav import build

        user = session.query(User).filter_by(email="root@example.com").one()
        login_user(user)
        sections = build(Actor(user.account_id, "r", is_root=True), "tasks.detail",
                         {**request.args.to_dict(), "task_id": 5})
        current = [(s.label, link.label) for s in sections for link in s.links if link.current]
        assert current == [("International", "Bulk tasks")]
