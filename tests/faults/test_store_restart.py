"""The queue store restarted under the running bot: while it is down the bot still answers Slack with a clear
"try again"; it reconnects by itself; a job it acknowledged as queued survives even a SIGKILL of the server,
because the server writes its append-only file before answering."""

from __future__ import annotations

import asyncio

from aiohttp import ClientSession

from core import config as config_mod
from core.store import EmbeddedValkey
from tests.bot.test_app import seed
from tests.conftest import Bot, config_dict, env_for


async def test_store_down_then_back(tmp_path, slack, github, remote):
    fix = seed(remote)
    server = EmbeddedValkey(tmp_path / "valkey", appendonly=True)
    url = server.start()
    port = server.port
    env = config_mod.load_env(env_for(tmp_path, slack, github, None, url))
    bot = await Bot(config_mod.parse(config_dict(remote), env=env), url, slack).start(worker=False)
    try:
        _, body = await bot.slash("/backport", f"1.0 {fix}")
        assert "Queued job" in body["text"]
        key = body["text"].split("`")[1]
        server.stop(kill=True)            # SIGKILL right after the ack: appendfsync always kept it
        _, body = await bot.slash("/backport", f"2.0 {fix}")
        assert body["text"].startswith("The job queue is unavailable right now, so nothing was queued.")
        async with ClientSession() as s:
            async with s.get(f"{bot.url}/healthz") as r:
                assert r.status == 503
            async with s.get(f"{bot.url}/metrics") as r:
                assert "bot_queue_up 0" in await r.text()
        status, _ = await bot.webhook("pull_request", {"action": "closed", "repository": {"full_name": "acme/widget"},
                                                       "pull_request": {"number": 1, "merged": True, "labels": []}},
                                      "down-1")
        assert status == 503              # GitHub will redeliver
        server = EmbeddedValkey(tmp_path / "valkey", port=port, appendonly=True)
        server.start()
        for _ in range(50):               # the same client reconnects by itself
            _, body = await bot.slash("/backport", f"2.0 {fix}")
            if "Queued job" in body["text"]:
                break
            await asyncio.sleep(0.2)
        assert "Queued job" in body["text"]
        job = await bot.services.queue.job(key)
        assert job is not None and job.status == "queued"     # the first job survived the restart
        assert await bot.queued() == 2
    finally:
        await bot.stop()
        server.stop()
