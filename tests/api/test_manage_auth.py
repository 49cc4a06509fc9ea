"""SecretId/SecretKey pairs: the service's rules, and signing, skew and replay on the
management API (the send API's scheme with X-SMS-SecretId)."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.encryption import is_encrypted
from app.models import ApiKey, AuditEntry
from app.services import api_keys
from app.services.errors import Conflict, NotFound, PermissionDenied
from tests.api.mgmt import Mgmt, as_user, new_pair
from tests.helpers import ctx_for, doc, make_app, make_user, root_ctx


def test_at_most_two_pairs_and_the_key_is_encrypted_at_rest(session: Session) -> None:
    user = make_user(session, "dev@example.com")
    c = ctx_for(session, user)
    (k1, s1), (_k2, s2) = api_keys.create_key(c, user.id), api_keys.create_key(c, user.id)
    assert s1 != s2 and len(s1) == 64 and k1.secret_id.startswith("AKID")
    with pytest.raises(Conflict):
        api_keys.create_key(c, user.id)
    session.flush()
    stored = session.execute(text("SELECT secret_key FROM api_key WHERE id = :i"),
                             {"i": k1.id}).scalar_one()
    assert is_encrypted(stored) and s1 not in stored
    audits = session.scalars(select(AuditEntry).where(AuditEntry.target_type == "api_key"))
    entries = list(audits)
    assert [e.action for e in entries] == ["CreateApiKey", "CreateApiKey"]
    assert all(s1 not in str(e.after) and s2 not in str(e.after) for e in entries)


def test_own_pairs_only_unless_root(session: Session) -> None:
    alice = make_user(session, "alice@example.com", presets=["SMSFullAccess"])
    bob = make_user(session, "bob@example.com")
    key, _ = api_keys.create_key(ctx_for(session, bob), bob.id)
    with pytest.raises(PermissionDenied):
        api_keys.create_key(ctx_for(session, alice), bob.id)
    with pytest.raises(PermissionDenied):
        api_keys.list_keys(ctx_for(session, alice), bob.id)
    for call in (lambda c: api_keys.set_enabled(c, key.id, False),
                 lambda c: api_keys.delete_key(c, key.id)):
        with pytest.raises(NotFound):
            call(ctx_for(session, alice))
    root = root_ctx(session)
    api_keys.set_enabled(root, key.id, False)
    assert not key.enabled
    api_keys.create_key(root, bob.id)
    assert len(api_keys.list_keys(root, bob.id)) == 2
    assert api_keys.delete_key(root, key.id) == bob.id


def _caller(api: Flask, session: Session, *policies: str) -> Mgmt:
    user = make_user(session, "ops@example.com", policies=list(policies) or None)
    return as_user(api.test_client(), session, user)


def test_signed_request_acts_as_the_user(api: Flask, session: Session) -> None:
    a, b = make_app(session, "Alpha"), make_app(session, "Beta")
    m = _caller(api, session, doc(("allow", ["sms:DescribeAppList"], [f"sms:app/{b}"])))
    resp = m.get("/apps")
    assert resp.status_code == 200, resp.get_json()
    assert [x["sdk_app_id"] for x in resp.get_json()["items"]] == [b]
    assert resp.get_json()["total"] == 1
    assert a not in resp.get_data(as_text=True)
    key = session.scalar(select(ApiKey).where(ApiKey.secret_id == m.secret_id))
    session.refresh(key)
    assert key is not None and key.last_used_at is not None


def test_skew_replay_and_wrong_key_are_refused(api: Flask, session: Session) -> None:
    make_app(session)
    m = _caller(api, session, doc(("allow", ["sms:*"], ["sms:app/*"])))
    now = int(time.time())
    for ts in (now - 310, now + 310):  # off by more than 300 s, with room for a slow run
        resp = m.get("/apps", ts=ts)
        assert (resp.status_code, resp.get_json()["error"]["code"]) == (
            401, "AuthFailure.TimestampSkew")
    assert m.get("/apps", ts=now - 290).status_code == 200
    assert m.get("/apps", nonce="same-nonce-1").status_code == 200
    replay = m.get("/apps", nonce="same-nonce-1")
    assert replay.get_json()["error"]["code"] == "AuthFailure.ReplayedNonce"
    forged = Mgmt(m.client, m.secret_id, "0" * 64).get("/apps")
    assert forged.get_json()["error"]["code"] == "AuthFailure.SignatureFailure"
    unknown = Mgmt(m.client, "AKID" + "0" * 32, m.secret_key).get("/apps")
    assert unknown.get_json()["error"]["code"] == "AuthFailure.SignatureFailure"
    # Unsigned: told which headers to send.
    missing = m.client.get("/api/v1/apps")
    assert missing.get_json()["error"]["code"] == "AuthFailure.MissingHeaders"


def test_tampered_body_or_query_fails(api: Flask, session: Session) -> None:
    from tests.api.test_send_api import signed

    make_app(session)
    m = _caller(api, session, doc(("allow", ["sms:*"], ["sms:app/*"])))
    h = signed(m.secret_key, b"", method="GET", target="/api/v1/apps?page=1")
    h["X-SMS-SecretId"] = m.secret_id
    assert m.client.get("/api/v1/apps?page=2", headers=h).status_code == 401
    body = b'{"name": "x"}'
    h = signed(m.secret_key, body, method="POST", target="/api/v1/templates")
    h["X-SMS-SecretId"] = m.secret_id
    resp = m.client.post("/api/v1/templates", data=b'{"name": "y"}', headers=h)
    assert resp.get_json()["error"]["code"] == "AuthFailure.SignatureFailure"


def test_disabled_or_deleted_pair_and_disabled_user(api: Flask, session: Session) -> None:
    make_app(session)
    user = make_user(session, "ops@example.com", presets=["SMSFullAccess"])
    secret_id, secret = new_pair(session, user)
    m = Mgmt(api.test_client(), secret_id, secret)
    assert m.get("/apps").status_code == 200
    key = session.scalar(select(ApiKey).where(ApiKey.secret_id == secret_id))
    assert key is not None
    api_keys.set_enabled(ctx_for(session, user), key.id, False)
    session.commit()
    resp = m.get("/apps")
    assert (resp.status_code, resp.get_json()["error"]["code"]) == (401, "AuthFailure.Disabled")
    api_keys.set_enabled(ctx_for(session, user), key.id, True)
    user.active = False
    session.commit()
    assert m.get("/apps").get_json()["error"]["code"] == "AuthFailure.Disabled"
    user.active = True
    api_keys.delete_key(ctx_for(session, user), key.id)
    session.commit()
    assert m.get("/apps").get_json()["error"]["code"] == "AuthFailure.SignatureFailure"


def test_api_key_audit_names_the_pair(api: Flask, session: Session) -> None:
    a = make_app(session)
    m = _caller(api, session, doc(("allow", ["sms:*"], ["sms:app/*"])))
    resp = m.put(f"/apps/{a}", {"name": "Renamed", "overview": "", "tags": []})
    assert resp.status_code == 200, resp.get_json()
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "ModifyAppInfo")).one()
    assert entry.actor_label == f"ops@example.com (API {m.secret_id})"
