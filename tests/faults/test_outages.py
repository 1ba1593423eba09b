"""Slack, GitHub and Anthropic answering 429 or 500: retried with backoff, bounded, no duplicate posts or PRs,
and a clear thread reply when they stay down."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import config_dict
from tests.fakes.anthropic import text
from tests.gitrepo import numbered
from tests.jobs.test_summarize import SUMMARY, small_pr, summarize


async def test_model_rate_limits_are_retried(make_bot, remote, github, anthropic):
    small_pr(github)
    anthropic.fail("messages", status=429, times=2, headers={"retry-after": "0"},
                   body='{"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}')
    anthropic.reply(text(json.dumps(SUMMARY)))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await summarize(bot, "#10")
    assert "*Summary*\nMakes the parser reject" in bot.thread_of(info)
    assert anthropic.count("messages") == 3 and len(anthropic.requests) == 1


async def test_model_down_is_said_and_the_digest_stands(make_bot, remote, github, anthropic):
    small_pr(github)
    anthropic.fail("messages", status=500, times=50,
                   body='{"type": "error", "error": {"type": "api_error", "message": "down"}}')
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await summarize(bot, "#10")
    thread = bot.thread_of(info)
    assert info["status"] == "done" and "*Digest*" in thread
    assert "No LLM summary: the model could not be reached (InternalServerError)" in thread
    assert anthropic.count("messages") == 4                      # one call, three retries, then it stops


async def test_github_down_at_publish_fails_clearly_and_opens_no_pr(make_bot, remote, github, slack):
    base = remote.commit("main", {"a.c": numbered(10)}, "Initial")
    remote.branch("release/1.0", base)
    fix = remote.commit("main", {"a.c": numbered(10).replace("line 2\n", "line two\n")}, "Fix two")
    github.fail("create_pull", status=500, times=100, body='{"message": "Server Error"}')
    data = config_dict(remote)
    data["queue"]["retries"] = 2
    bot = await make_bot(data)
    _, body = await bot.slash("/backport", f"1.0 {fix}")
    key = body["text"].split("`")[1]
    info = await bot.final(key, timeout=120)
    thread = bot.thread_of(info)
    assert info["status"] == "failed" and "internal error after 2 attempts" in thread and "500" in thread
    assert [p for p in github.pulls.get("acme/widget", {}).values() if p["head"]["ref"].startswith("backport/")] == []
    assert sum("Pushed `backport/" in m["text"] for m in slack.thread(info["thread_ts"])) == 1   # said once


async def test_github_blip_at_publish_is_retried_into_one_pr(make_bot, remote, github):
    base = remote.commit("main", {"a.c": numbered(10)}, "Initial")
    remote.branch("release/1.0", base)
    fix = remote.commit("main", {"a.c": numbered(10).replace("line 2\n", "line two\n")}, "Fix two")
    github.fail("create_pull", status=502, times=1, body='{"message": "Bad Gateway"}')
    bot = await make_bot(config_dict(remote))
    _, body = await bot.slash("/backport", f"1.0 {fix}")
    info = await bot.final(body["text"].split("`")[1])
    assert info["status"] == "done"
    assert len([p for p in github.pulls["acme/widget"].values() if p["head"]["ref"].startswith("backport/")]) == 1


async def test_a_job_whose_record_was_evicted_fails_visibly(make_bot, remote, slack):
    """A store that evicted the job's record (channel, thread): the job does not loop on KeyError; it ends,
    and the notify channel hears about it."""
    from tests.conftest import NOTIFY

    base = remote.commit("main", {"a.c": numbered(10)}, "Initial")
    remote.branch("release/1.0", base)
    bot = await make_bot(config_dict(remote), worker=False)
    _, body = await bot.slash("/backport", f"1.0 {base}")
    key = body["text"].split("`")[1]
    await bot.services.redis.delete(f"bot:job:{key}")                   # evicted
    await bot.stop()
    bot = await make_bot(config_dict(remote))
    await slack.wait_for(lambda: any("lost its record" in m["text"] for m in slack.messages.values()
                                     if m["channel"] == NOTIFY), what="the lost-record notice")
    job = await bot.services.queue.job(key)
    for _ in range(100):
        job = await bot.services.queue.job(key)
        if job.status.value == "complete":
            break
        await asyncio.sleep(0.05)
    assert job.status.value == "complete" and job.result == "record-lost" and job.attempts == 1


async def test_a_job_whose_queue_entry_was_evicted_ends_failed(make_bot, remote, slack):
    from core.queue import job_info
    from jobs.worker import reconcile

    base = remote.commit("main", {"a.c": numbered(10)}, "Initial")
    remote.branch("release/1.0", base)
    bot = await make_bot(config_dict(remote), worker=False)
    _, body = await bot.slash("/backport", f"1.0 {base}")
    key = body["text"].split("`")[1]
    job = await bot.services.queue.job(key)
    r = bot.services.redis
    await r.delete(job.id)                                              # evicted
    await r.zrem("saq:bot:incomplete", job.id)
    await r.lrem("saq:bot:queued", 0, job.id)
    assert await reconcile(bot.services, grace_s=0) == [key]
    info = await job_info(r, key)
    assert info["status"] == "failed" and "vanished from the queue" in info["detail"]
    assert "vanished from the queue" in bot.thread_of(info)
    assert await reconcile(bot.services, grace_s=0) == []               # once
