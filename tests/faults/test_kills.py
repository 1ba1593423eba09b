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
