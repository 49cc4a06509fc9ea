"""Policy documents: validation with exact messages, and evaluation."""

from __future__ import annotations

import pytest

from app.services.access import PRESETS, Actor, PolicyError, evaluate, parse_policy
from app.services.errors import PermissionDenied
from tests.helpers import doc

A, B = "1400000001", "1400000002"


@pytest.mark.parametrize(("text", "message"), [
    ('{"version": "2.0", "statement": [', "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"version": "1.0", "statement": []}', '"version" must be "2.0"'),
    ('{"version": "2.0", "statement": []}', '"statement" must be a non-empty list'),
    ('{"version": "2.0", "statement": [], "extra": 1}', "unknown key 'extra'"),
    (doc(("permit", ["sms:*"], ["sms:app/*"])), "statement 1: unknown effect 'permit'"),
    (doc(("allow", ["sms:SendSms"], ["sms:app/*"]), ("allow", ["sms:Fly"], ["*"])),
     "statement 2: unknown action 'sms:Fly'"),
    (doc(("allow", ["cvm:RunInstances"], ["*"])), "unknown action 'cvm:RunInstances'"),
    (doc(("allow", ["sms:*"], ["app/1"])), "statement 1: bad resource pattern 'app/1'"),
    (doc(("allow", ["sms:*"], ["sms:app/123"])), "bad resource pattern 'sms:app/123'"),
    (doc(("allow", [], ["sms:app/*"])), "action must be a non-empty list"),
    ('{"version": "2.0", "statement": [{"effect": "allow", "action": ["sms:*"]}]}',
     "resource must be a non-empty list"),
])
def test_malformed_policy_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy(text)
    assert message in str(exc.value)


def test_json_error_gives_line_and_column() -> None:
    with pytest.raises(PolicyError, match=r"line 2 column \d+"):
        parse_policy('{"version": "2.0",\n "statement": [}')


def test_nothing_is_allowed_unless_a_statement_allows_it() -> None:
    st = parse_policy(doc(("allow", ["sms:DescribeAppList"], [f"sms:app/{A}"])))
    assert evaluate(st, "DescribeAppList", f"sms:app/{A}")
    assert not evaluate(st, "DescribeAppList", f"sms:app/{B}")
    assert not evaluate(st, "ModifyAppInfo", f"sms:app/{A}")
    assert not evaluate((), "DescribeAppList", f"sms:app/{A}")


def test_deny_wins_over_allow_in_any_order() -> None:
    for order in (1, -1):
        statements = [("allow", ["sms:*"], ["sms:app/*"]),
                      ("deny", ["sms:DeleteAppInfo"], [f"sms:app/{A}"])][::order]
        st = parse_policy(doc(*statements))
        assert not evaluate(st, "DeleteAppInfo", f"sms:app/{A}")
        assert evaluate(st, "DeleteAppInfo", f"sms:app/{B}")
        assert evaluate(st, "ModifyAppInfo", f"sms:app/{A}")


def test_wildcard_actions_and_single_app_resources() -> None:
    st = parse_policy(doc(("allow", ["sms:Describe*"], [f"sms:app/{A}"])))
    assert evaluate(st, "DescribeFreqRule", f"sms:app/{A}")
    assert not evaluate(st, "ModifyFreqRule", f"sms:app/{A}")
    # A single-app grant is not a grant on all applications.
    assert not evaluate(st, "DescribeAppList", "sms:app/*")


def test_presets_are_valid_and_mean_what_they_say() -> None:
    full = parse_policy(__import__("json").dumps(PRESETS["SMSFullAccess"][1]))
    read = parse_policy(__import__("json").dumps(PRESETS["SMSReadOnlyAccess"][1]))
    review = parse_policy(__import__("json").dumps(PRESETS["SMSReviewer"][1]))
    assert evaluate(full, "DeleteAppInfo", f"sms:app/{A}")
    assert evaluate(read, "DescribeStatistics", f"sms:app/{A}")
    assert not evaluate(read, "ModifyAppInfo", f"sms:app/{A}")
    assert evaluate(review, "ReviewContent", f"sms:app/{A}")
    assert not evaluate(review, "SendSms", f"sms:app/{A}")


def test_actor_require_names_action_and_resource() -> None:
    actor = Actor(account_id=1, label="ops@example.com")
    with pytest.raises(PermissionDenied, match=f"sms:ModifyAppInfo on sms:app/{A}"):
        actor.require("ModifyAppInfo", A)
    with pytest.raises(PermissionDenied, match="root"):
        actor.require_root()
    assert Actor(account_id=1, label="root", is_root=True).can("DeleteAppInfo", A)


def test_unknown_action_in_code_is_a_bug_not_a_denial() -> None:
    with pytest.raises(ValueError):
        Actor(account_id=1, label="x").can("NoSuchAction")


def test_deeply_nested_document_is_a_policy_error_not_a_crash() -> None:
    with pytest.raises(PolicyError, match="nested more than 32 levels deep"):
        parse_policy('{"version": "2.0", "statement": ' + "[" * 50_000 + "]" * 50_000 + "}")


def test_half_a_surrogate_pair_is_a_policy_error_not_a_crash() -> None:
    with pytest.raises(PolicyError, match="surrogate pair"):
        parse_policy('{"version": "2.0", "statement": [{"effect": "allow", '
                     '"action": ["sms:\\ud800"], "resource": ["*"]}]}')


def test_an_integer_past_the_decoders_limit_is_a_policy_error_not_a_crash() -> None:
    with pytest.raises(PolicyError, match="not accepted"):
        parse_policy('{"version": ' + "9" * 5000 + "}")
