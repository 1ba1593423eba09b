"""Shared fixtures: our own Valkey server (never the machine's shared Redis), the fake Slack, GitHub and
Anthropic servers, and `bot`, a whole bot (web app + in-process worker) wired to them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from pathlib import Path

# Imported now rather than by hypothesis's own plugin at session end: on CPython 3.11.7, compiling that module late
# in a long session (after the worker tests) failed with "AST constructor recursion depth mismatch".
import hypothesis.internal.observability  # noqa: F401
import pytest
import redis as syncredis
from aiohttp import ClientSession, web

from core import config as config_mod
from core.store import EmbeddedValkey, free_port
from tests.fakes.anthropic import KEY as ANTHROPIC_KEY
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.github import TOKEN as GITHUB_TOKEN
from tests.fakes.github import FakeGitHub
from tests.fakes.slack import TOKEN as SLACK_TOKEN
from tests.fakes.slack import FakeSlack
from tests.gitrepo import RepoBuilder

SIGNING_SECRET = "test-signing-secret-0000"
WEBHOOK_SECRET = "test-webhook-secret-0000"
MAINTAINER = "UMAINT01"
OUTSIDER = "UOUTSIDE1"
CHANNEL = "CWORK0001"
NOTIFY = "CNOTIFY01"


@pytest.fixture(scope="session")
def valkey(tmp_path_factory):
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(valkey):
    """Database 1 of our own server, emptied before each test."""
    url = f"redis://127.0.0.1:{valkey.port}/1"
    client = syncredis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
async def slack():
    server = await FakeSlack(groups={"SGROUP01": ["UGROUPM1"]}).start()
    yield server
    await server.stop()


@pytest.fixture
async def github():
    server = await FakeGitHub().start()
    yield server
    await server.stop()


@pytest.fixture
async def anthropic():
    server = await FakeAnthropic().start()
    yield server
    await server.stop()


@pytest.fixture
def remote(tmp_path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "remote.git")


def sign_slack(body: str, secret: str = SIGNING_SECRET, ts: int | None = None) -> dict:
    ts = int(time.time()) if ts is None else ts
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def sign_github(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def env_for(tmp_path: Path, slack: FakeSlack | None, github: FakeGitHub | None,
            anthropic: FakeAnthropic | None, redis_url: str = "") -> dict[str, str]:
    env = {"BOT_DATA_DIR": str(tmp_path / "data"), "REDIS_URL": redis_url, "PORT": str(free_port())}
    if slack:
        env.update(SLACK_BOT_TOKEN=SLACK_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=slack.api_url)
    if github:
        env.update(GITHUB_TOKEN=GITHUB_TOKEN, GITHUB_API_URL=github.url, GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET)
    if anthropic:
        env.update(ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=anthropic.url)
    return env


def config_dict(remote: RepoBuilder, **repo_overrides) -> dict:
    repo = {"github": "acme/widget", "default_branch": "main", "clone_url": remote.url,
            "releases": {"1.0": "release/1.0", "2.0": "release/2.0"}}
    repo.update(repo_overrides)
    return {
        "repos": [repo],
        "slack": {"maintainers": [MAINTAINER, "SGROUP01"], "notify_channel": NOTIFY},
        "llm": {"model": "claude-test", "max_turns": 8},
        "queue": {"heartbeat_s": 2, "sweep_s": 1, "concurrency": 2, "retries": 3},
    }


TRIGGERS = itertools.count(1)


class Bot:
    """A whole bot: the aiohttp web app on a loopback port and an in-process SAQ worker."""

    def __init__(self, config, redis_url: str, slack: FakeSlack):
        from core import slack as slack_mod
        from core.services import Services

        self.config = config
        self.slack = slack
        self.client = slack_mod.web_client(config.env)
        self.services = Services.build(config, redis_url, {"slack": slack_mod.SlackChat(self.client)})
        self.port = free_port()
        self.runner = None
        self.worker = None
        self.worker_task = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, worker: bool = True) -> "Bot":
        from bot.app import build_bolt, build_web
        from jobs.worker import make_worker

        bolt = build_bolt(self.services, self.client)
        self.runner = web.AppRunner(build_web(self.services, bolt), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        if worker:
            self.worker = make_worker(self.services)
            self.worker_task = asyncio.create_task(self.worker.start())
        return self

    async def stop(self) -> None:
        if self.worker:
            await self.worker.stop()
            self.worker_task.cancel()
            await asyncio.gather(self.worker_task, return_exceptions=True)
        if self.runner:
            await self.runner.cleanup()
        await self.services.close()

    async def slash(self, command: str, text: str, user: str = MAINTAINER, channel: str = CHANNEL,
                    secret: str = SIGNING_SECRET, ts: int | None = None) -> tuple[int, dict | str]:
        body = urllib.parse.urlencode({
            "token": "legacy", "team_id": "T0001", "team_domain": "test", "channel_id": channel,
            "channel_name": "work", "user_id": user, "user_name": user.lower(), "command": command,
            "text": text, "api_app_id": "A0001", "response_url": f"{self.slack.url}/respond/1",
            "trigger_id": f"{next(TRIGGERS)}.2.3"})          # Slack gives every invocation its own
        async with ClientSession() as s:
            async with s.post(f"{self.url}/slack/events", data=body, headers=sign_slack(body, secret, ts)) as r:
                raw = await r.text()
                try:
                    return r.status, json.loads(raw)
                except ValueError:
                    return r.status, raw

    async def click(self, action_id: str, value: str, message: dict, user: str = MAINTAINER) -> int:
        """Press a button of `message`: Slack sends the button's own value (`value` when it has none)."""
        value = next((e.get("value", value) for b in message.get("blocks", []) if b.get("type") == "actions"
                      for e in b.get("elements", []) if e.get("action_id") == action_id), value)
        payload = {"type": "block_actions", "team": {"id": "T0001"}, "user": {"id": user},
                   "api_app_id": "A0001", "token": "legacy", "trigger_id": f"{next(TRIGGERS)}.2.3",
                   "channel": {"id": message["channel"]}, "container": {"type": "message"},
                   "message": {"ts": message["ts"], "text": message["text"], "blocks": message["blocks"]},
                   "response_url": f"{self.slack.url}/respond/2",
                   "actions": [{"action_id": action_id, "block_id": "job_actions", "value": value,
                                "type": "button", "action_ts": f"{next(TRIGGERS)}.1"}]}
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        async with ClientSession() as s:
            async with s.post(f"{self.url}/slack/events", data=body, headers=sign_slack(body)) as r:
                return r.status

    async def webhook(self, event: str, payload: dict, delivery: str, secret: str = WEBHOOK_SECRET,
                      signature: str | None = None) -> tuple[int, str]:
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json",
                   "X-Hub-Signature-256": signature if signature is not None else sign_github(body, secret)}
        async with ClientSession() as s:
            async with s.post(f"{self.url}/github/webhook", data=body, headers=headers) as r:
                return r.status, await r.text()

    async def final(self, key: str, timeout: float = 60) -> dict:
        """Wait until the job's parent shows a final status; returns the job record."""
        from core.queue import job_info

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = await job_info(self.services.redis, key)
            if info.get("status") in ("done", "needs a maintainer", "failed"):
                job = await self.services.queue.job(key)
                if job is None or job.status not in ("queued", "active"):
                    return info
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {key} did not finish: {await job_info(self.services.redis, key)}")

    async def queued(self) -> int:
        """Jobs that commands or webhooks queued and that are not finished (the workers' cron job aside)."""
        ids = [k for k in await self.services.redis.zrange("saq:bot:incomplete", 0, -1) if b":cron:" not in k]
        return len(ids)

    def thread_of(self, info: dict) -> str:
        return self.slack.thread_text(info["thread_ts"])


@pytest.fixture
async def make_bot(tmp_path, redis_url, slack, github):
    """make_bot(config_dict, anthropic=None, worker=True) -> started Bot; stopped at the end of the test."""
    bots = []

    async def make(data: dict, anthropic: FakeAnthropic | None = None, worker: bool = True) -> Bot:
        env = config_mod.load_env(env_for(tmp_path, slack, github, anthropic, redis_url))
        config = config_mod.parse(data, env=env)
        bot = await Bot(config, redis_url, slack).start(worker=worker)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        await bot.stop()
