"""A hostile repository against the whole bot: its escape script (tests/targets/escapes.sh) runs as a backport's
test command and as a PR's adversarial build, with secrets planted in the worker's own environment. Every
escape fails, nothing it starts outlives the job, and no planted secret reaches Slack, GitHub or the audit log.
A hostile target that kills everything it can see doesn't stop the oracle from reporting it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.audit import Audit
from core import sandbox
from tests.conftest import CHANNEL, config_dict
from tests.jobs.test_adversarial import SECURITY, private
from tests.jobs.test_adversarial import setup as adversarial_setup
from tests.jobs.test_sandbox import alive_with
from tests.gitrepo import numbered

pytestmark = pytest.mark.skipif(not sandbox.available(), reason=f"no sandbox on this machine: {sandbox.probe()}")

PLANTED = "ghp_PLANTEDworker0123456789"
ESCAPES = (Path(__file__).resolve().parents[1] / "targets" / "escapes.sh").read_text()


def plant(monkeypatch):
    for name in ("GITHUB_TOKEN", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "GITHUB_WEBHOOK_SECRET", "REDIS_URL"):
        monkeypatch.setenv(name, f"{PLANTED}-{name}")


def probe_command(tmp_path, redis_url: str, marker: str) -> str:
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    return f"sh escapes.sh {os.getpid()} {port} {tmp_path / 'data'} {marker}"      # BOT_DATA_DIR (conftest)


async def everything_said(bot, slack, github, key: str) -> str:
    return json.dumps([list(slack.messages.values()), slack.ephemerals, [p for _, p in github.calls],
                       await Audit(bot.services.redis, key).entries()])


async def test_a_backport_test_command_cannot_escape(make_bot, remote, github, slack, redis_url, monkeypatch,
                                                     tmp_path):
    plant(monkeypatch)
    base = remote.commit("main", {"src/a.c": numbered(20), "escapes.sh": ESCAPES}, "Initial")
    remote.branch("release/1.0", base)
    fix = remote.commit("main", {"src/a.c": numbered(20).replace("line 3\n", "line three\n")}, "Fix three")
    data = config_dict(remote, test_command=probe_command(tmp_path, redis_url, "4242") + "; cat /proc/1/environ")
    bot = await make_bot(data)
    _, body = await bot.slash("/backport", f"1.0 {fix}")
    key = body["text"].split("`")[1]
    info = await bot.final(key, timeout=120)
    assert info["status"] == "done", bot.thread_of(info)
    out = [e for e in await Audit(bot.services.redis, key).entries() if e["kind"] == "output"][0]
    assert "PROBES DONE" in out["text"] and "ESCAPED" not in out["text"], out["text"]
    assert "network (loopback only)" in out["data"]["sandbox"]
    assert "in the sandbox, no network" in bot.thread_of(info)
    assert alive_with("sleep 42427") == []
    assert PLANTED not in await everything_said(bot, slack, github, key)
    assert not (bot.config.env.data_dir / "escape").exists()


async def test_an_adversarial_build_and_target_cannot_escape_or_hide(make_bot, remote, github, slack, redis_url,
                                                                    monkeypatch, tmp_path):
    plant(monkeypatch)
    data = adversarial_setup(remote, github, buggy=True, extra={"escapes.sh": ESCAPES})
    adv = data["repos"][0]["adversarial"]
    adv["build"] = probe_command(tmp_path, redis_url, "4343")
    # The target first kills every process it can see and looks for the oracle's files, then serves.
    adv["start"] = ("sh -c 'kill -9 -1; ls /proc | grep -c . > /dev/null; cat /proc/1/environ; "
                    "exec python3 kvserver.py --port {port}'")
    bot = await make_bot(data)
    _, body = await bot.slash("/adversarial", "PR#21 60")
    key = body["text"].split("`")[1]
    info = await bot.final(key, timeout=300)
    assert info["status"] == "done", bot.thread_of(info)
    build = [e for e in await Audit(bot.services.redis, key).entries() if e["stage"] == "build"][0]
    assert "PROBES DONE" in build["text"] and "ESCAPED" not in build["text"], build["text"]
    assert alive_with("sleep 43437") == []
    reports = private(slack)
    assert any("*signal*" in r for r in reports), reports      # the planted crash is still found and reported
    assert "namespaces: user, pid" in bot.thread_of(info)
    assert PLANTED not in await everything_said(bot, slack, github, key)
    assert all(m["channel"] in (CHANNEL, SECURITY) for m in slack.messages.values())
