"""`smsops task …` through Click's runner against a real database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from tests.helpers import doc, make_user
from tests.sending.conftest import Shop
from tests.test_cli import run as run  # a fixture: invokes the CLI on the test backend


def test_validate_create_show_cancel_stop(run, shop: Shop, session: Session,  # type: ignore[no-untyped-def]
                                          tmp_path: Path) -> None:
    session.commit()
    f = tmp_path / "list.csv"
    f.write_text("phone,code\n13800138000,1234\n13800138001,12\n+14155550100,1234\n")
    app, template = shop.app.sdk_app_id, str(shop.templates["mainland"])
    out = run("task", "validate", str(f), "--app", app, "--template", template, "--json")
    got = json.loads(out.output)
    assert {k: got[k] for k in ("rows", "valid", "errors", "billed_items")} == {
        "rows": 3, "valid": 1, "errors": 2, "billed_items": 1}
    assert isinstance(got["seconds"], float)
    created = run("task", "create", str(f), "--app", app, "--template", template,
                  "--at", (datetime.now() + timedelta(days=1)).isoformat(timespec="minutes"),
                  "--json")
    assert created.exit_code == 0, created.output
    made = json.loads(created.output)
    assert made["status"] == "awaiting_confirmation" and made["valid"] == 1
    shown = json.loads(run("task", "show", str(made["id"]), "--json").output)
    assert shown == {"id": made["id"], "status": "awaiting_confirmation", "total": 1,
                     "submitted": 0, "delivered": 0, "failed": 0, "remaining": 1,
                     "unsent": 0, "paused_until": None}
    assert "cancelled" in run("task", "cancel", str(made["id"])).output
    stopped = run("task", "stop", str(made["id"]))
    assert stopped.exit_code == 1 and "only a sending task" in stopped.output
    sending = json.loads(run("task", "create", str(f), "--app", app, "--template", template,
                             "--confirm", "--rate", "5", "--json").output)
    assert sending["status"] == "sending"
    assert "stopped" in run("task", "stop", str(sending["id"])).output
    # Found from outside: a stopped task said "0 remaining" and nothing of the rows it
    # will never send (the web page shows them as left unsent).
    after = json.loads(run("task", "show", str(sending["id"]), "--json").output)
    assert (after["status"], after["remaining"], after["unsent"]) == ("stopped", 0, 1)
    assert "1 left unsent" in run("task", "show", str(sending["id"])).output


def test_clear_errors_and_policies(run, shop: Shop, session: Session,  # type: ignore[no-untyped-def]
                                   tmp_path: Path) -> None:
    make_user(session, "viewer@example.com", policies=[doc(
        ("allow", ["sms:DescribeSendTasks", "sms:DescribeAppList"], ["sms:app/*"]))])
    session.commit()
    f = tmp_path / "list.xlsx"
    f.write_bytes(b"PK\x03\x04nope")
    app, template = shop.app.sdk_app_id, str(shop.templates["mainland"])
    bad = run("task", "validate", str(f), "--app", app, "--template", template)
    assert bad.exit_code == 1 and "corrupt" in bad.output
    good = tmp_path / "ok.csv"
    good.write_text("13800138000,1234\n")
    denied = run("task", "create", str(good), "--app", app, "--template", template,
                 "--as", "viewer@example.com")
    assert denied.exit_code == 1 and "not allowed" in denied.output
    when = run("task", "create", str(good), "--app", app, "--template", template, "--at", "soon")
    assert when.exit_code == 1 and "ISO" in when.output
    assert run("task", "show", "424242").exit_code == 1
    assert run("task", "show", "1", "--as", "nobody@example.com").exit_code == 1


def test_an_id_out_of_range_is_a_clear_error(run, shop: Shop, session: Session,  # type: ignore[no-untyped-def]
                                             tmp_path: Path) -> None:
    """Not a traceback (PostgreSQL's 'integer out of range')."""
    session.commit()
    good = tmp_path / "ok.csv"
    good.write_text("13800138000,1234\n")
    for args in (("show", "99999999999"), ("stop", "99999999999"), ("cancel", "2147483648")):
        out = run("task", *args)
        assert out.exit_code == 1 and f"No task {args[1]}." in out.output
    made = run("task", "create", str(good), "--app", shop.app.sdk_app_id,
               "--template", "99999999999")
    assert made.exit_code == 1 and "No template 99999999999." in made.output


def test_show_says_why_a_task_failed(run, shop: Shop, session: Session,  # type: ignore[no-untyped-def]
                                     tmp_path: Path) -> None:
    session.commit()
    f = tmp_path / "bad.csv"
    f.write_text("12345,1234\n")
    made = json.loads(run("task", "create", str(f), "--app", shop.app.sdk_app_id,
                          "--template", str(shop.templates["mainland"]), "--json").output)
    assert made["status"] == "failed"
    shown = run("task", "show", str(made["id"]))
    assert shown.exit_code == 0
    assert "failed (No row of the file can be sent" in shown.output, shown.output
    # The JSON keeps exactly the documented keys, and the rows left unsent for good.
    assert set(json.loads(run("task", "show", str(made["id"]), "--json").output)) == {
        "id", "status", "total", "submitted", "delivered", "failed", "remaining", "unsent",
        "paused_until"}


def test_the_confirm_step_from_the_command_line(run, shop: Shop, session: Session,  # type: ignore[no-untyped-def]
                                                tmp_path: Path) -> None:
    """Found from outside: the CLI had no confirm step; `create --confirm` sent 5,000
    messages of which 4,011 the daily limit refused, a warning the web's confirm step
    gives. `task confirm` shows it and sends only when told to; `create --confirm`
    says it too."""
    from app.models import MuteEntry, SendTask

    session.add(MuteEntry(account_id=shop.app.account_id, phone_number="+8613800138000",
                          signature_id=shop.signatures["mainland"], sms_type=None,
                          consent_confirmed_by="t"))
    session.commit()
    f = tmp_path / "list.csv"
    f.write_text("phone,code\n13800138000,1234\n13800138001,5678\n")
    app, template = shop.app.sdk_app_id, str(shop.templates["mainland"])
    made = json.loads(run("task", "create", str(f), "--app", app, "--template", template,
                          "--json").output)
    asked = run("task", "confirm", str(made["id"]), stdin="n\n")
    assert asked.exit_code == 1 and "nothing was sent" in asked.output
    assert "Confirm step: 2 recipient(s)" in asked.output
    assert "1 refused: FailedOperation.PhoneNumberInMuteList" in asked.output
    session.expire_all()
    assert session.get(SendTask, made["id"]).status == "awaiting_confirmation"  # type: ignore[union-attr]
    dry = json.loads(run("task", "confirm", str(made["id"]), "--json").output)
    assert dry["confirmed"] is False and dry["preflight"]["refusals"][0]["recipients"] == 1
    done = run("task", "confirm", str(made["id"]), "--yes")
    assert done.exit_code == 0 and f"Task {made['id']} confirmed (sending)" in done.output
    at_once = run("task", "create", str(f), "--app", app, "--template", template, "--confirm")
    assert "If sent now, 1 refused" in at_once.output and "(sending)" in at_once.output
