"""A worker killed with SIGKILL at different moments of a backport, over several trials: each time the job is
recovered by another worker and completes once: one branch, one PR, one final thread reply."""

from __future__ import annotations

import asyncio
import signal

import pytest
import tomli_w

from tests.conftest import config_dict, env_for
from tests.gitrepo import numbered
from tests.jobs.test_worker import start_worker


@pytest.mark.parametrize("delay", [0.3, 0.9, 1.5, 2.1, 2.7, 3.3])
async def test_sigkill_at_any_moment_completes_once(tmp_path, make_bot, remote, slack, github, redis_url, delay):
    base = remote.commit("main", {"a.c": numbered(30)}, "Initial")
    remote.branch("release/1.0", base)
    fix = remote.commit("main", {"a.c": numbered(30).replace("line 3\n", "line three\n")}, "Fix three")
    # A slow-ish test stage gives the kill something to land in; earlier delays land in fetch/resolve/pick.
    data = config_dict(remote, test_command="sleep 1.5", test_timeout_s=60)
    (tmp_path / "bot.toml").write_text(tomli_w.dumps(data))
    env = env_for(tmp_path, slack, github, None, redis_url)
    env["BOT_CONFIG"] = str(tmp_path / "bot.toml")
    bot = await make_bot(data, worker=False)
    log = tmp_path / "workers.log"
    first = start_worker(env, log)
    second = None
    try:
        await asyncio.sleep(1.5)                     # the worker is up
        _, body = await bot.slash("/backport", f"1.0 {fix}")
        key = body["text"].split("`")[1]
        await asyncio.sleep(delay)
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
    prs = [p for p in github.pulls["acme/widget"].values() if p["head"]["ref"].startswith("backport/")]
    assert len(prs) == 1
    finals = [m for m in slack.thread(info["thread_ts"]) if "Backport ready for review" in m["text"]]
    assert len(finals) == 1
    assert len(slack.parents()) == 1
    assert [ref for ref in remote.repo.references if ref.startswith("refs/heads/backport/")] == \
        [f"refs/heads/backport/{fix[:10]}-to-release/1.0"]


def _audit_has(redis_url: str, key_box: list, stage: str, kind: str):
    import json

    import redis as syncredis

    client = syncredis.Redis.from_url(redis_url)

    def check() -> bool:
        if not key_box:
            return False
        entries = [json.loads(e) for e in client.lrange(f"bot:audit:{key_box[0]}", 0, -1)]
        return any(e["stage"] == stage and e["kind"] == kind for e in entries)
    return check


# Each moment: how the test recognises it (the worker is SIGKILLed at once), and what it arranges first.
MOMENTS = {
    "fetch started": lambda t: _audit_has(t.redis_url, t.key, "fetch", "start"),
    "pick started": lambda t: _audit_has(t.redis_url, t.key, "pick", "start"),
    "tests running": lambda t: _audit_has(t.redis_url, t.key, "test", "start"),
    "PR request sent, answered only after the kill": lambda t: t.github_call("create_pull", hang=True),
    "PR made, its answer lost": lambda t: t.github_call("create_pull"),
    "labels added, answer lost": lambda t: t.github_call("add_labels"),
    "comment on the source PR made, answer lost": lambda t: t.github_call("add_comment"),
    "final reply posted, answer lost": lambda t: t.slack_post("Backport ready for review"),
}


class Trial:
    def __init__(self, redis_url, github, slack):
        self.redis_url, self.github, self.slack, self.key = redis_url, github, slack, []

    def github_call(self, name: str, hang: bool = False):
        (self.github.hangs if hang else self.github.lingers)[name] = 4
        return lambda: self.github.count(name) > 0

    def slack_post(self, text: str):
        self.slack.linger_when = lambda name, args: 4 if name == "chat.postMessage" and text in args.get("text", "") else 0
        return lambda: any(text in p.get("text", "") for p in self.slack.payloads("chat.postMessage"))


@pytest.mark.parametrize("moment", list(MOMENTS))
async def test_sigkill_in_each_stage_and_between_effect_and_answer(tmp_path, make_bot, remote, slack, github,
                                                                   redis_url, moment):
    base = remote.commit("main", {"a.c": numbered(30)}, "Initial")
    remote.branch("release/1.0", base)
    squash = remote.commit("main", {"a.c": numbered(30).replace("line 3\n", "line three\n")}, "Fix three (#41)")
    github.add_pull("acme/widget", 41, title="Fix three", merge_commit_sha=squash)
    data = config_dict(remote, test_command="sleep 1", test_timeout_s=60)
    (tmp_path / "bot.toml").write_text(tomli_w.dumps(data))
    env = env_for(tmp_path, slack, github, None, redis_url)
    env["BOT_CONFIG"] = str(tmp_path / "bot.toml")
    bot = await make_bot(data, worker=False)
    trial = Trial(redis_url, github, slack)
    reached = MOMENTS[moment](trial)
    log = tmp_path / "workers.log"
    first = start_worker(env, log)
    second = None
    try:
        await asyncio.sleep(1.5)
        _, body = await bot.slash("/backport", "1.0 PR#41")
        trial.key.append(body["text"].split("`")[1])
        await slack.wait_for(reached, timeout=30, what=moment)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        github.hangs.clear()
        github.lingers.clear()
        slack.linger_when = None
        second = start_worker(env, log)
        info = await bot.final(trial.key[0], timeout=90)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)
    assert info["status"] == "done", log.read_text()[-2000:]
    prs = [p for p in github.pulls["acme/widget"].values() if p["head"]["ref"].startswith("backport/")]
    assert len(prs) == 1
    assert github.labels["acme/widget"][prs[0]["number"]] == ["backport"]
    assert len(github.comments["acme/widget"][41]) == 1
    thread = [m["text"] for m in slack.thread(info["thread_ts"])]
    assert sum("Backport ready for review" in t for t in thread) == 1, thread
    assert sum(t.startswith("Opened ") for t in thread) == 1, thread
    assert not any("already exists" in t for t in thread), thread
    assert len(slack.parents()) == 1
    assert [ref for ref in remote.repo.references if ref.startswith("refs/heads/backport/")] == \
        ["refs/heads/backport/pr41-to-release/1.0"]
