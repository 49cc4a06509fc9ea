"""Every content and review action x allow / deny / a grant on one application only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.services import content, reviews
from app.services.context import Ctx
from app.services.errors import PermissionDenied
from tests.helpers import QUALIFICATION, ctx_for, doc, make_app, make_user, root_ctx

TEMPLATE = {"name": "n", "sms_type": "notification", "content": "Order {1} shipped"}
SIGNATURE = {"purpose": "self", "sign_type": "app", "content": "Acme"}


def _template(s: Session) -> int:
    return content.create_template(root_ctx(s), "international", TEMPLATE).id


def _signature(s: Session) -> int:
    return content.create_signature(root_ctx(s), "international", SIGNATURE).id


def _qualification(s: Session) -> int:
    return content.create_qualification(root_ctx(s), dict(QUALIFICATION)).id


Setup = Callable[[Session], Any]
CASES: dict[str, tuple[Setup | None, Callable[[Ctx, Any], object]]] = {
    "DescribeSmsTemplateList": (None, lambda c, _: content.list_templates(c, "mainland")),
    "AddSmsTemplate": (None, lambda c, _: content.create_template(c, "mainland", TEMPLATE)),
    "ModifySmsTemplate": (_template, lambda c, i: content.update_template(c, i, TEMPLATE)),
    "DeleteSmsTemplate": (_template, lambda c, i: content.delete_template(c, i)),
    "DescribeSmsSignList": (None, lambda c, _: content.list_signatures(c, "mainland")),
    "AddSmsSign": (None, lambda c, _: content.create_signature(c, "international", SIGNATURE)),
    "ModifySmsSign": (_signature, lambda c, i: content.update_signature(c, i, SIGNATURE)),
    "DeleteSmsSign": (_signature, lambda c, i: content.delete_signature(c, i)),
    "DescribeQualification": (None, lambda c, _: content.list_qualifications(c)),
    "AddQualification": (None, lambda c, _: content.create_qualification(c, dict(QUALIFICATION))),
    "ModifyQualification": (_qualification, lambda c, i: content.update_qualification(
        c, i, {"admin_name": "New Admin"})),
    "DeleteQualification": (_qualification, lambda c, i: content.delete_qualifications(c, [i])),
    "ReviewContent": (_template, lambda c, i: reviews.approve(c, "template", i, revision=1)),
}


@pytest.mark.parametrize("action", sorted(CASES))
def test_content_action_matrix(session: Session, action: str) -> None:
    setup, call = CASES[action]
    one_app = make_app(session)
    target = setup(session) if setup else None
    # Describe* too, since changing something starts by reading it.
    allowed = make_user(session, "yes@example.com", policies=[
        doc(("allow", [f"sms:{action}", "sms:Describe*"], ["sms:app/*"]))])
    denied = make_user(session, "no@example.com", policies=[
        doc(("allow", ["sms:*"], ["sms:app/*"]), ("deny", [f"sms:{action}"], ["sms:app/*"]))])
    scoped = make_user(session, "one@example.com", policies=[
        doc(("allow", ["sms:*"], [f"sms:app/{one_app}"]))])
    for user in (denied, scoped):
        with pytest.raises(PermissionDenied):
            call(ctx_for(session, user), target)
    call(ctx_for(session, allowed), target)
