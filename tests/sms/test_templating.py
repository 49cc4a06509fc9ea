"""Template variables and content rules."""

from __future__ import annotations

import pytest

from app.sms.templating import problems, render, sample_params, variables


def test_variables_are_found_once_each() -> None:
    assert variables("Hi {1}, your code {2} expires in {2} min") == [1, 2]
    assert variables("no variables") == []


@pytest.mark.parametrize(("content", "sms_type", "message"), [
    ("", "notification", "Enter"),
    ("{1}{2}", "notification", "variables only"),
    ("  {1} ", "notification", "variables only"),
    ("Code {1} and {3}", "verification", "consecutively"),
    ("Code {2}", "verification", "consecutively"),
    ("Code {0}", "verification", "consecutively"),
    ("x" * 500, "notification", "under 500"),
    ("Big sale today!", "marketing", "opt out"),
])
def test_content_rules(content: str, sms_type: str, message: str) -> None:
    assert any(message in p for p in problems(content, sms_type))


@pytest.mark.parametrize("content", [
    "Sale {1}. Reply R to unsubscribe", "大促销 回T退订", "Sale! Reply STOP to opt out",
    "Deals inside, opt-out any time",
])
def test_marketing_with_opt_out_is_fine(content: str) -> None:
    assert problems(content, "marketing") == []


def test_render_and_samples() -> None:
    assert render("Hi {1}, code {2}, again {1}", ["Ana", "42"]) == "Hi Ana, code 42, again Ana"
    assert sample_params(2, "verification") == ["123456", "123456"]
    assert problems("x" * 499, "notification") == []


def test_control_characters_are_refused() -> None:
    assert any("control characters" in p for p in problems("Code\x00 {1}", "verification"))
    assert problems("Line one\nline two {1}", "notification") == []
