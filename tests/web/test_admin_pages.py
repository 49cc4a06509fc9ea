"""Users, policies, account settings and the audit log on the web."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, Policy, User
from tests.helpers import doc
from tests.web.conftest import Client, soup, text_of


def test_root_creates_sub_user_and_grants_policies(root: Client, session: Session) -> None:
    root.get("/users")
    created = root.post("/users", {"email": "ops@example.com", "name": "Ops"})
    one_time = text_of(created, "#one-time-password")
    user = session.scalar(select(User).where(User.email == "ops@example.com"))
    reviewer = session.scalar(select(Policy).where(Policy.name == "SMSReviewer"))
    resp = root.post(f"/users/{user.id}/policies", {"policy": [str(reviewer.id)]})
    assert resp.status_code == 302
    page = root.get(f"/users/{user.id}")
    checked = [i["value"] for i in soup(page).select("input[name=policy][checked]")]
    assert checked == [str(reviewer.id)]
    dup = root.post("/users", {"email": "OPS@example.com"}, htmx=True)
    assert dup.status_code == 422 and "already exists" in text_of(dup, ".invalid")
    assert len(one_time) >= 12


def test_a_refused_policy_change_says_why_and_keeps_the_page(root: Client,
                                                              session: Session) -> None:
    """Found from outside: a policy deleted in another tab (or any refused change) gave
    a 422 page with no message, and without the user's API keys section."""
    root.get("/users")
    root.post("/users", {"email": "ops@example.com", "name": "Ops"})
    user = session.scalar(select(User).where(User.email == "ops@example.com"))
    assert user is not None
    whole = root.get(f"/users/{user.id}")
    assert soup(whole).select_one("#api-keys") is not None
    resp = root.post(f"/users/{user.id}/policies", {"policy": ["99999"]})
    assert resp.status_code == 422
    assert "Unknown policy." in text_of(resp, ".error")
    assert soup(resp).select_one("#api-keys") is not None
    reset = root.post(f"/users/{user.id}/password", {})
    assert soup(reset).select_one("#api-keys") is not None


def test_custom_policy_errors_are_shown_exactly(root: Client, session: Session) -> None:
    root.get("/policies/new")
    bad = root.post("/policies/new", {"name": "ops", "description": "",
                                      "document": doc(("allow", ["sms:*"], ["app/1"]))})
    assert bad.status_code == 422
    assert "statement 1: bad resource pattern 'app/1'" in text_of(bad, ".invalid .error")
    good = root.post("/policies/new", {"name": "ops", "description": "d",
                                       "document": doc(("allow", ["sms:*"], ["sms:app/*"]))})
    assert good.status_code == 302
    policy = session.scalar(select(Policy).where(Policy.name == "ops"))
    assert policy is not None and not policy.preset
    preset = session.scalar(select(Policy).where(Policy.name == "SMSFullAccess"))
    assert "cannot be changed" in root.get(f"/policies/{preset.id}").get_data(as_text=True)
    assert root.post(f"/policies/{preset.id}/delete").status_code == 409
    assert root.post(f"/policies/{policy.id}/delete").status_code == 302


def test_account_settings_page(root: Client, session: Session) -> None:
    root.get("/settings")
    bad = root.post("/settings", {"account_type": "enterprise", "timezone": "Nowhere/City",
                                  "intl_daily_quota": "100"}, htmx=True)
    assert bad.status_code == 422 and "Unknown time zone" in text_of(bad, "#settings")
    ok = root.post("/settings", {"account_type": "enterprise", "timezone": "Europe/Paris",
                                 "intl_daily_quota": "300"})
    assert ok.status_code == 302
    session.expire_all()
    assert session.scalar(select(Account.timezone)) == "Europe/Paris"


def test_audit_log_lists_changes_newest_first(root: Client) -> None:
    root.get("/apps")
    root.post("/apps", {"name": "One"})
    root.post("/apps/1400000001/info", {"name": "Two", "overview": "", "tags": ""})
    page = root.get("/audit")
    rows = soup(page).select("table.audit tbody tr")
    assert "ModifyAppInfo" in rows[0].get_text() and "CreateApp" in rows[1].get_text()
    assert "root@example.com" in rows[0].get_text()
    filtered = root.get("/audit?action=CreateApp", htmx=True)
    assert "<html" not in filtered.get_data(as_text=True)
    assert "1 entries" in text_of(filtered, "p.muted")


def test_every_page_renders_for_root(root: Client, session: Session) -> None:
    root.get("/apps")
    root.post("/apps", {"name": "One"})
    root.post("/users", {"email": "ops@example.com"})
    user_id = session.scalar(select(User.id).where(User.email == "ops@example.com"))
    policy_id = session.scalar(select(Policy.id).limit(1))
    for url in ("/", "/apps", "/apps/1400000001", "/users", f"/users/{user_id}", "/policies",
                "/policies/new", f"/policies/{policy_id}", "/settings", "/audit", "/password"):
        resp = root.get(url, follow_redirects=True)
        assert resp.status_code == 200, url
        assert soup(resp).select_one("main") is not None, url


def test_slack_member_ids_cannot_be_typed_in(root: Client, session: Session) -> None:
    """Linking takes a one-time code typed in Slack (tests/bot/test_slack_link.py)."""
    page = root.get("/account")
    assert "not configured" in text_of(page, "#slack")
    assert soup(page).select_one("input[name=slack_user_id]") is None
    assert root.post("/account", {"slack_user_id": "U0ROOT001"}).status_code == 405
    root.post("/users", {"email": "ops@example.com"})
    ops = session.scalar(select(User).where(User.email == "ops@example.com"))
    assert soup(root.get(f"/users/{ops.id}")).select_one("input[name=slack_user_id]") is None
    assert root.post(f"/users/{ops.id}/slack", {"slack_user_id": "U0OPS0001"}).status_code \
        in (404, 405)
    session.expire_all()
    assert session.scalar(select(User.slack_user_id).where(User.id == ops.id)) is None


def test_deeply_nested_policy_document_is_a_form_error(root: Client, session: Session) -> None:
    root.get("/policies/new")
    deep = '{"version": "2.0", "statement": ' + "[" * 100_000 + "]" * 100_000 + "}"
    bad = root.post("/policies/new", {"name": "deep", "description": "", "document": deep})
    assert bad.status_code == 422
    assert "nested more than 32 levels deep" in text_of(bad, ".invalid .error")
    assert session.scalar(select(Policy).where(Policy.name == "deep")) is None


def test_unit_prices_are_set_in_settings(root: Client, session: Session) -> None:
    """Found from outside: nothing set the unit prices the confirm step estimates cost
    with (README: "unit prices in Settings"), so every estimate said none were set."""
    root.get("/settings")
    bad = root.post("/settings/prices", {"mainland_price": "4.5",
                                         "country_prices": "US, 5\nGermany 7\nZZ, 3"},
                    htmx=True)
    assert bad.status_code == 422
    said = text_of(bad, "#settings")
    assert "Whole cents" in said and "line 2 (Germany 7)" in said
    assert soup(bad).select_one("textarea[name=country_prices]").get_text().startswith("US, 5")
    session.expire_all()
    assert session.scalar(select(Account.unit_prices)) in (None, {})
    ok = root.post("/settings/prices", {"mainland_price": "4", "country_prices": "us, 5\n\nGB;6"})
    assert ok.status_code == 302
    session.expire_all()
    assert session.scalar(select(Account.unit_prices)) == {"mainland": 4, "US": 5, "GB": 6}
    page = root.get("/settings")
    assert soup(page).select_one("input[name=mainland_price]")["value"] == "4"
    assert soup(page).select_one("textarea[name=country_prices]").get_text() == "GB, 6\nUS, 5\n"
    odd = root.post("/settings/prices", {"mainland_price": "", "country_prices": "US, \u00b2"},
                    htmx=True)  # a superscript digit is a digit to isdigit(), not to int()
    assert odd.status_code == 422 and "line 1" in text_of(odd, "#settings")
    unknown = root.post("/settings/prices", {"mainland_price": "", "country_prices": "ZZ, 3"},
                        htmx=True)
    assert unknown.status_code == 422 and "neither mainland nor a country" in text_of(
        unknown, "#settings")


def test_country_prices_refuse_the_mainland_and_a_country_given_twice(root: Client,
                                                                      session: Session) -> None:
    """Found from outside: "CN, 2" was taken among the international prices (the mainland
    has its own field, and this price applied to nothing), and "US, 4" then "US, 9" kept
    the last without a word."""
    root.get("/settings")
    both = root.post("/settings/prices", {"mainland_price": "",
                                          "country_prices": "CN, 2\nUS, 4\nUS, 9"}, htmx=True)
    assert both.status_code == 422
    said = text_of(both, "#settings")
    assert "line 1 (CN, 2): the mainland has its own price" in said, said
    assert "line 3 (US, 9): US is priced on line 2 already" in said, said
    session.expire_all()
    assert session.scalar(select(Account.unit_prices)) in (None, {})
