"""Issue #14: every detail page names its area in breadcrumbs, as the navigation does."""

from __future__ import annotations

import io

from sqlalchemy.orm import Session

from app.models import Policy
from app.services import alarms, audience, content, tasks
from tests.helpers import QUALIFICATION, root_ctx
from tests.sending.conftest import Shop
from tests.web.conftest import Client, soup

NAME = "Spring <b>sale</b> & more"  # user text: shown as typed, never as markup


def _crumbs(client: Client, url: str) -> list[tuple[str, str | None]]:
    resp = client.get(url)
    assert resp.status_code == 200, url
    page = soup(resp)
    navs = page.select("nav[aria-label=Breadcrumb]")
    assert len(navs) == 1, url
    items = navs[0].select("li")
    assert items, url
    *before, last = items
    assert last.select_one("[aria-current=page]") is not None, url
    assert last.select_one("a") is None, url  # the page itself is not a link
    assert all(li.select_one("[aria-current]") is None for li in before), url
    assert "<b>" not in str(navs[0]), url  # escaped
    return [(" ".join(li.get_text(" ").split()),
             str(li.a["href"]) if li.a is not None else None) for li in items]


def _task(shop: Shop, template: str, numbers: bytes) -> int:
    task, _summary = tasks.create_task(shop.ctx, tasks.Draft(
        shop.app.sdk_app_id, shop.templates[template], name=NAME), io.BytesIO(numbers),
        "list.csv")
    return task.id


def test_detail_pages_name_their_area(root: Client, shop: Shop, session: Session) -> None:
    c = shop.ctx
    sid = shop.app.sdk_app_id
    intl = content.create_template(c, "international", {
        "name": NAME, "sms_type": "notification", "content": "Hello {1}"})
    q = content.create_qualification(c, {**QUALIFICATION, "enterprise_name": NAME})
    group = audience.create_group(c, name=NAME, sms_type="marketing")
    mainland_task = _task(shop, "mainland", b"13800138000,1234\n")
    intl_task = _task(shop, "international", b"+14155550101,123456\n")
    alarm = alarms.raise_alarm(c, None, "threshold", period="p", ttl_s=60, app=shop.app,
                               subject=NAME, body="b", sms="s")
    assert alarm is not None
    c.deferred.clear()
    session.commit()
    root_user = root_ctx(session).actor.user_id
    policy_id = session.query(Policy).filter_by(name="SMSReviewer").one().id
    mainland_sig = shop.signatures["mainland"]
    expected = {
        f"/content/templates/{intl.id}": [
            ("International", None), ("Body templates", "/content/templates?region=international"),
            (NAME, None)],
        "/content/templates/new?region=mainland": [
            ("Mainland China", None), ("Body templates", "/content/templates?region=mainland"),
            ("New template", None)],
        f"/content/signatures/{mainland_sig}": [
            ("Mainland China", None), ("Signatures", "/content/signatures?region=mainland"),
            ("Shop", None)],
        f"/content/qualifications/{q.id}": [
            ("Mainland China", None), ("Qualifications", "/content/qualifications"),
            (NAME, None)],
        f"/apps/{sid}": [("Applications", None), ("Basic configuration", "/configuration"),
                         ("Shop", None)],
        # Security is in the navigation; the page names its application.
        f"/apps/{sid}/security": [("Applications", None), ("Security", "/security"),
                                  ("Shop", None)],
        f"/apps/{sid}/contacts": [("Applications", None), ("Alarm contacts", "/contacts"),
                                  ("Shop", None)],
        f"/tasks/{mainland_task}": [
            ("Mainland China", None), ("Bulk tasks", "/tasks?region=mainland"),
            (f"Task {mainland_task}: {NAME}", None)],
        f"/tasks/{intl_task}": [
            ("International", None), ("Bulk tasks", "/tasks?region=international"),
            (f"Task {intl_task}: {NAME}", None)],
        "/tasks/new?region=international": [
            ("International", None), ("Bulk tasks", "/tasks?region=international"),
            ("New task", None)],
        f"/groups/{group.id}": [("Marketing", None), ("Customers and groups", "/groups"),
                                (NAME, None)],
        f"/groups/{group.id}/send": [
            ("Marketing", None), ("Customers and groups", "/groups"),
            (NAME, f"/groups/{group.id}"), ("Send", None)],
        f"/alarms?alarm={alarm.id}": [("Applications", None), ("Alarm history", "/alarms"),
                                      (f"Alarm #{alarm.id}", None)],
        f"/users/{root_user}": [("Access", None), ("Users", "/users"),
                                ("root@example.com", None)],
        f"/policies/{policy_id}": [("Access", None), ("Policies", "/policies"),
                                   ("SMSReviewer", None)],
        "/policies/new": [("Access", None), ("Policies", "/policies"), ("New policy", None)],
    }
    got = {url: _crumbs(root, url) for url in expected}
    assert got == expected


def test_top_level_pages_have_no_crumbs(root: Client) -> None:
    for url in ("/", "/apps", "/tasks", "/groups", "/alarms", "/stats"):
        assert not soup(root.get(url)).select("nav[aria-label=Breadcrumb]"), url


def test_each_application_links_its_security_page(root: Client, shop: Shop) -> None:
    """Security is reached from the application's page too (the navigation's link
    opens on the first application)."""
    shop.ctx.db.commit()
    sid = shop.app.sdk_app_id
    page = soup(root.get(f"/apps/{sid}"))
    assert page.select_one(f"main a[href='/apps/{sid}/security']") is not None
