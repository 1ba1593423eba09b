"""The Slack app manifest declares every command, escaped, with usage hints, interactivity and the scopes."""

from pathlib import Path

import yaml

from commands import COMMANDS

MANIFEST = Path(__file__).resolve().parents[1] / "manifests" / "slack-app.yaml"


def test_manifest_declares_every_command():
    data = yaml.safe_load(MANIFEST.read_text())
    declared = {c["command"]: c for c in data["features"]["slash_commands"]}
    assert set(declared) == {f"/{name}" for name in COMMANDS}
    for command in declared.values():
        assert command["should_escape"] is True
        assert command["url"].endswith("/slack/events")
        assert command.get("usage_hint") and command.get("description")
    assert data["settings"]["interactivity"]["is_enabled"] is True
    scopes = set(data["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "usergroups:read", "im:write"} <= scopes
    assert "socket_mode_enabled" in data["settings"]


def test_manifest_declares_the_home_tab_its_event_and_the_shortcut():
    from commands.modals import SUMMARIZE_SHORTCUT

    data = yaml.safe_load(MANIFEST.read_text())
    assert data["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in data["settings"]["event_subscriptions"]["bot_events"]
    assert [s["callback_id"] for s in data["features"]["shortcuts"]] == [SUMMARIZE_SHORTCUT]
