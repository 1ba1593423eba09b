"""A worker killed with SIGKILL during a backport: after the job is recovered by another worker it completes
once: one branch, one PR, one final thread reply. Killed at moments spread over time (several trials), at the
start of each stage, and between an effect outside our store (a PR, labels, a comment, a reply) and its answer."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
import redis as syncredis
import tomli_w

from tests.conftest import config_dict, env_for
from tests.gitrepo import numbered
from tests.jobs.test_worker import start_worker


async def kill_and_recover(tmp_path, make_bot, data: dict, args: str, reached, env: dict,
                           command: str = "/backport", anthropic=None) -> tuple:
    """Start a worker, ask for `command args`, SIGKILL the worker once `await reached(key)` returns, start
    another and wait for the job's final state, which must be done. Returns (key, info, workers' log)."""
    (tmp_path / "bot.toml").write_text(tomli_w.dumps(data))
    env = {**env, "BOT_CONFIG": str(tmp_path / "bot.toml")}
    bot = await make_bot(data, worker=False, anthropic=anthropic)
    log = tmp_path / "workers.log"
    first = start_worker(env, log)
    second = None
    try:
        await asyncio.sleep(1.5)                     # the worker is up
        _, body = await bot.slash(command, args)
        key = body["text"].split("`")[1]
        await reached(key)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start_worker(env, log)
        info = await bot.final(key, timeout=90)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)
    assert info["status"] == "done", log.read_text()[-2000:]
    return key, info, log


def backport_prs(github) -> list[dict]:
    return [p for p in github.pulls["acme/widget"].values() if p["head"]["ref"].startswith("backport/")]


def backport_branches(remote) -> list[str]:
    return [ref for ref in remote.repo.references if ref.startswith("refs/heads/backport/")]


def seed(remote, subject: str) -> str:
    base = remote.commit("main", {"a.c": numbered(30)}, "Initial")
    remote.branch("release/1.0", base)
    return remote.commit("main", {"a.c": numbered(30).replace("line 3\n", "line three\n")}, subject)


@pytest.mark.parametrize("delay", [0.3, 0.9, 1.5, 2.1, 2.7, 3.3])
async def test_sigkill_at_any_moment_completes_once(tmp_path, make_bot, remote, slack, github, redis_url, delay):
    fix = seed(remote, "Fix three")
    # A slow-ish test stage gives the kill something to land in; earlier delays land in fetch/resolve/pick.
    data = config_dict(remote, test_command="sleep 1.5", test_timeout_s=60)
    _, info, _ = await kill_and_recover(tmp_path, make_bot, data, f"1.0 {fix}",
                                        lambda key: asyncio.sleep(delay),
                                        env_for(tmp_path, slack, github, None, redis_url))
    assert len(backport_prs(github)) == 1
    finals = [m for m in slack.thread(info["thread_ts"]) if "Backport ready for review" in m["text"]]
    assert len(finals) == 1
    assert len(slack.parents()) == 1
    assert backport_branches(remote) == [f"refs/heads/backport/{fix[:10]}-to-release/1.0"]


def stage_started(redis_url: str, stage: str):
    client = syncredis.Redis.from_url(redis_url)

    def seen(key: str) -> bool:
        return any(e["stage"] == stage and e["kind"] == "start"
                   for e in map(json.loads, client.lrange(f"bot:audit:{key}", 0, -1)))
    return seen


def github_call(github, name: str, hang: bool = False):
    """The call is made (hang: answered only after a while, after the kill; else made at once and its answer
    held back, as if lost on the way to the dying worker)."""
    (github.hangs if hang else github.lingers)[name] = 4
    return lambda key: github.count(name) > 0


def slack_post(slack, text: str):
    slack.linger_when = lambda name, args: 4 if name == "chat.postMessage" and text in args.get("text", "") else 0
    return lambda key: any(text in p.get("text", "") for p in slack.payloads("chat.postMessage"))


MOMENTS = {
    "fetch started": lambda redis_url, github, slack: stage_started(redis_url, "fetch"),
    "pick started": lambda redis_url, github, slack: stage_started(redis_url, "pick"),
    "tests running": lambda redis_url, github, slack: stage_started(redis_url, "test"),
    "PR request sent, answered only after the kill": lambda r, github, s: github_call(github, "create_pull", True),
    "PR made, its answer lost": lambda r, github, s: github_call(github, "create_pull"),
    "labels added, answer lost": lambda r, github, s: github_call(github, "add_labels"),
    "comment on the source PR made, answer lost": lambda r, github, s: github_call(github, "add_comment"),
    "final reply posted, answer lost": lambda r, g, slack: slack_post(slack, "Backport ready for review"),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
async def test_sigkill_in_each_stage_and_between_effect_and_answer(tmp_path, make_bot, remote, slack, github,
                                                                   redis_url, moment):
    squash = seed(remote, "Fix three (#41)")
    github.add_pull("acme/widget", 41, title="Fix three", merge_commit_sha=squash)
    check = MOMENTS[moment](redis_url, github, slack)

    async def reached(key: str) -> None:
        await slack.wait_for(lambda: check(key), timeout=30, what=moment)
        github.hangs.clear()                  # the next worker meets healthy services
        github.lingers.clear()
        slack.linger_when = None

    data = config_dict(remote, test_command="sleep 1", test_timeout_s=60)
    _, info, _ = await kill_and_recover(tmp_path, make_bot, data, "1.0 PR#41", reached,
                                        env_for(tmp_path, slack, github, None, redis_url))
    prs = backport_prs(github)
    assert len(prs) == 1
    assert github.labels["acme/widget"][prs[0]["number"]] == ["backport"]
    assert len(github.comments["acme/widget"][41]) == 1
    thread = [m["text"] for m in slack.thread(info["thread_ts"])]
    assert sum("Backport ready for review" in t for t in thread) == 1, thread
    assert sum(t.startswith("Opened ") for t in thread) == 1, thread
    assert not any("already exists" in t for t in thread), thread
    assert len(slack.parents()) == 1
    assert backport_branches(remote) == ["refs/heads/backport/pr41-to-release/1.0"]
