"""`/sms stats` through the signed Slack endpoint (loopback Web API)."""

from __future__ import annotations

import json

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Message, User
from app.services import rollups
from tests.bot.conftest import Slack
from tests.helpers import make_user
from tests.sending.conftest import Shop

ROOT = "U0ROOT0001"


def _traffic(session: Session, shop: Shop) -> None:
    session.get(User, shop.ctx.actor.user_id).slack_user_id = ROOT
    shop.send(["+14155550101", "+14155550102", "bad"])  # two accepted, one refused
    now = utcnow()
    rows = [{"account_id": shop.app.account_id, "app_id": shop.app.id, "serial_no": "x1",
             "request_id": "r", "region": "international", "phone_number": "+14155550109",
             "iso_code": "US", "content": "x", "fee": 2, "status": "delivered",
             "carrier_code": "DELIVRD", "created_at": now, "receipt_at": now},
            {"account_id": shop.app.account_id, "app_id": shop.app.id, "serial_no": "x2",
             "request_id": "r", "region": "international", "phone_number": "+14155550108",
             "iso_code": "US", "content": "x", "fee": 1, "status": "rejected",
             "error_code": "<!channel> *bold*", "created_at": now}]
    session.execute(insert(Message), rows)
    rollups.count_new(session, rows)
    session.commit()


def test_stats_answers_with_figures_reasons_and_a_link(slack: Slack, shop: Shop,
                                                       session: Session) -> None:
    _traffic(session, shop)
    sid = shop.app.sdk_app_id
    resp = slack.command(f"stats {sid} today international", user=ROOT).get_json()
    body = json.dumps(resp["blocks"])
    assert "Requests: *5*" in body and "Accepted by the carrier: *1*" in body
    assert "Billed items: *2*" in body and "20.0%" in body
    assert "InvalidParameterValue.IncorrectPhoneNumber" in body
    assert "<!channel>" not in body and "&lt;!channel&gt;" in body  # escaped
    assert f"/stats?region=international&period=today&app={sid}|" in body
    assert "Requests: *0*" in json.dumps(slack.command("stats mainland yesterday",
                                                       user=ROOT).get_json()["blocks"])


def test_stats_usage_and_rights(slack: Slack, shop: Shop, session: Session) -> None:
    _traffic(session, shop)
    usage = slack.command("stats forever", user=ROOT).get_json()["text"]
    assert "/sms stats" in usage and "forever" in usage
    assert ":no_entry:" in slack.command("stats 1400009999", user=ROOT).get_json()["text"]
    user = make_user(session, "ro@example.com", policies=[json.dumps({
        "version": "2.0", "statement": [{"effect": "allow", "action": ["sms:DescribeAppList"],
                                         "resource": ["sms:app/*"]}]})])
    user.slack_user_id = "U0READ0001"
    session.commit()
    denied = slack.command("stats", user="U0READ0001").get_json()["text"]
    assert ":no_entry:" in denied and "DescribeStatistics" in denied
