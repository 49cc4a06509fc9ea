"""The shipped Slack manifest matches what the bot does."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "slack" / "manifest.yml"


def test_manifest_declares_the_command_interactivity_and_scopes() -> None:
    m = yaml.safe_load(MANIFEST.read_text())
    [command] = m["features"]["slash_commands"]
    assert command["command"] == "/sms" and command["url"].endswith("/slack/events")
    assert m["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    scopes = set(m["oauth_config"]["scopes"]["bot"])
    # commands; chat.postMessage/update/postEphemeral; DMs; users.info with email
    assert {"commands", "chat:write", "im:write", "users:read", "users:read.email"} <= scopes


def test_the_usage_hint_names_every_sub_command() -> None:
    """Found from outside: the hint Slack shows while typing /sms named 7 of the 20
    sub-commands (no send, tasks, stop, stats...)."""
    from bot import blocks
    from bot import tasks as bot_tasks

    m = yaml.safe_load(MANIFEST.read_text())
    [command] = m["features"]["slash_commands"]
    hinted = {part.split()[0] for part in command["usage_hint"].split("|")}
    every = {usage.split()[0] for usage in [*blocks.HELP, *bot_tasks.HELP]}
    assert every <= hinted, sorted(every - hinted)
    assert len(command["usage_hint"]) <= 1000  # Slack's limit
    assert command["description"] and len(command["description"]) <= 2000
