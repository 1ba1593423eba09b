"""The Slack side: the Web API client retries 429 (Retry-After) and 5xx, bounded; Socket Mode runs the same
commands over a websocket."""

from __future__ import annotations

import asyncio

import pytest

from core import config as config_mod
from core import slack as slack_mod
from core.chat import ChatError
from tests.bot.test_app import seed
from tests.conftest import CHANNEL, MAINTAINER, config_dict, env_for
from tests.fakes.slack import APP_TOKEN


def chat_for(slack, tmp_path):
    env = config_mod.load_env(env_for(tmp_path, slack, None, None))
    return slack_mod.SlackChat(slack_mod.web_client(env))


async def test_rate_limits_and_server_errors_are_retried(slack, tmp_path):
    chat = chat_for(slack, tmp_path)
    slack.fail("chat.postMessage", status=429, headers={"Retry-After": "1"}, times=2,
               body='{"ok": false, "error": "ratelimited"}')
    ts = await chat.post(CHANNEL, "hello")
    assert slack.count("chat.postMessage") == 3 and slack.messages[ts]["text"] == "hello"
    slack.fail("chat.update", status=500, times=1)
    await chat.update(CHANNEL, ts, "edited")
    assert slack.messages[ts]["text"] == "edited"
    assert len(slack.parents()) == 1                         # retries never duplicate a post


async def test_a_service_that_stays_down_is_a_clear_error(slack, tmp_path):
    chat = chat_for(slack, tmp_path)
    slack.fail("chat.postMessage", status=503, times=10)
    with pytest.raises(ChatError, match="chat.postMessage"):
        await chat.post(CHANNEL, "hello")
    assert slack.count("chat.postMessage") == 4             # one call and three retries, then it stops
    with pytest.raises(ChatError, match="channel_not_found|invalid_auth|unknown"):
        slack.fail("chat.postEphemeral", status=200, body='{"ok": false, "error": "channel_not_found"}')
        await chat.ephemeral(CHANNEL, MAINTAINER, "x")


async def test_socket_mode_runs_commands_over_the_socket(tmp_path, slack, github, redis_url, remote):
    from bot.app import serve
    from core.services import Services
    from core.store import free_port

    fix = seed(remote)
    env = env_for(tmp_path, slack, github, None, redis_url)
    env["SLACK_APP_TOKEN"] = APP_TOKEN
    cfg = config_mod.parse(config_dict(remote), env=config_mod.load_env(env))
    assert cfg.env.slack_mode == "socket"
    client = slack_mod.web_client(cfg.env)
    services = Services.build(cfg, redis_url, {"slack": slack_mod.SlackChat(client)})
    ready = asyncio.Event()
    task = asyncio.create_task(serve(services, client, free_port(), socket_mode=True, ready=ready,
                                     host="127.0.0.1"))
    try:
        await asyncio.wait_for(ready.wait(), 20)
        ack = await slack.send_envelope("slash_commands", {
            "command": "/backport", "text": f"1.0 {fix}", "user_id": MAINTAINER, "channel_id": CHANNEL,
            "team_id": "T0001", "api_app_id": "A0001", "response_url": f"{slack.url}/respond/1",
            "trigger_id": "1.2.3", "token": "legacy"}, "env-1")
        assert "Queued job `bp-" in ack["payload"]["text"]
        assert await services.queue.count("queued") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await services.close()
