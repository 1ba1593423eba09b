"""Two workers racing over one queue: every job runs once — one branch, one PR, one final reply each."""

from __future__ import annotations

import asyncio

from jobs.worker import make_worker
from tests.conftest import config_dict
from tests.gitrepo import numbered


async def test_two_workers_one_effect_per_job(make_bot, remote, github, slack):
    base = remote.commit("main", {"a.c": numbered(10)}, "Initial")
    remote.branch("release/1.0", base)
    fixes = [remote.commit("main", {f"f{i}.c": f"fix {i}\n"}, f"Fix {i}") for i in range(12)]
    data = config_dict(remote)
    data["queue"]["concurrency"] = 3
    bot = await make_bot(data)                              # worker one
    second = make_worker(bot.services)                      # worker two, same queue
    task = asyncio.create_task(second.start())
    try:
        answers = await asyncio.gather(*(bot.slash("/backport", f"1.0 {sha}") for sha in fixes))
        keys = [a[1]["text"].split("`")[1] for a in answers]
        infos = [await bot.final(k) for k in keys]
    finally:
        await second.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert all(i["status"] == "done" for i in infos)
    prs = [p for p in github.pulls["acme/widget"].values() if p["head"]["ref"].startswith("backport/")]
    assert len(prs) == 12 and len({p["head"]["ref"] for p in prs}) == 12
    for info in infos:
        finals = [m for m in slack.thread(info["thread_ts"]) if "Backport ready for review" in m["text"]]
        assert len(finals) == 1
