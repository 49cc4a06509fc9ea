"""API keys on My account and, for root, on a user's page."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiKey
from tests.helpers import make_user
from tests.web.conftest import Client, soup, text_of


def test_create_see_once_disable_delete_on_my_account(client: Client, session: Session) -> None:
    user = make_user(session, "dev@example.com", presets=["SMSReadOnlyAccess"])
    session.commit()
    assert client.login("dev@example.com").status_code == 302
    assert "No API keys" in text_of(client.get("/account"), "#api-keys")
    resp = client.post(f"/api-keys/users/{user.id}")
    assert resp.status_code == 200
    page = soup(resp)
    secret_id = page.select_one("#new-secret-id").get_text()
    secret_key = page.select_one("#new-secret-key").get_text()
    assert secret_id.startswith("AKID") and len(secret_key) == 64
    again = client.get("/account").get_data(as_text=True)
    assert secret_id in again and secret_key not in again  # shown once
    client.post(f"/api-keys/users/{user.id}")
    third = client.post(f"/api-keys/users/{user.id}", follow_redirects=True)
    assert "at most 2" in third.get_data(as_text=True)
    key = session.scalar(select(ApiKey).where(ApiKey.secret_id == secret_id))
    assert key is not None
    client.post(f"/api-keys/{key.id}/status", {"enabled": "off"})
    session.refresh(key)
    assert not key.enabled
    client.post(f"/api-keys/{key.id}/delete")
    assert session.scalar(select(ApiKey).where(ApiKey.secret_id == secret_id)) is None


def test_root_manages_a_users_keys_and_others_cannot(root: Client, session: Session,
                                                     client: Client) -> None:
    dev = make_user(session, "dev@example.com", presets=["SMSFullAccess"])
    other = make_user(session, "other@example.com", presets=["SMSFullAccess"])
    session.commit()
    resp = root.post(f"/api-keys/users/{dev.id}")
    assert resp.status_code == 200
    assert soup(resp).select_one("#new-secret-key") is not None
    assert "dev@example.com" in text_of(root.get(f"/users/{dev.id}"), "#api-keys")
    key = session.scalar(select(ApiKey).where(ApiKey.user_id == dev.id))
    assert key is not None
    root.get("/logout")
    second = Client(client.http.application.test_client())  # another browser
    assert second.login("other@example.com").status_code == 302
    assert second.post(f"/api-keys/users/{dev.id}").status_code == 403
    assert second.post(f"/api-keys/{key.id}/delete").status_code == 404
    assert session.scalar(select(ApiKey).where(ApiKey.user_id == dev.id)) is not None
    assert other.id != dev.id
