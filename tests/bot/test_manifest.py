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
