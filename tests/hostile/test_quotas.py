"""A stranger's flood can't outrank a maintainer: an outsider's commands are limited per person and per hour
(one line back, nothing queued), wait in the low-priority queue with its own slot, and spend only their own
GitHub and model budget; a maintainer's backport starts at once even while the outsider's jobs hang."""

from __future__ import annotations

import asyncio
import time

from core.quotas import QuotaConfig, Quotas
from core.queue import job_info
from tests.bot.test_app import seed
from tests.conftest import config_dict
from tests.jobs.test_summarize import small_pr

OUTSIDER = "UOUTSIDE1"


async def test_an_outsiders_flood_is_capped_and_never_ahead_of_a_maintainer(make_bot, remote, github, slack):
    fix = seed(remote)
    for n in range(10, 40):
        small_pr(github, number=n, head=f"{n:040x}")
    github.hangs["get_pull_files"] = 5            # the outsider's jobs hang on GitHub while the maintainer asks
    bot = await make_bot(config_dict(remote))
    answers = [(await bot.slash("/summarize", f"PR#{n}", user=OUTSIDER))[1]["text"] for n in range(10, 40)]
    queued = [a for a in answers if a.startswith("Queued job")]
    refused = [a for a in answers if a.startswith("Not queued:")]
    assert len(queued) == 5 and len(refused) == 25          # five waiting or running at most
    assert "waiting or running (at most 5)" in refused[0]
    asked = time.monotonic()
    _, body = await bot.slash("/backport", f"1.0 {fix}")
    key = body["text"].split("`")[1]
    started = None
    while time.monotonic() - asked < 10:
        if (await job_info(bot.services.redis, key)).get("status") not in ("queued", None):
            started = time.monotonic() - asked
            break
        await asyncio.sleep(0.02)
    assert started is not None and started < 3, started      # not behind the outsider's jobs
    info = await bot.final(key)
    assert info["status"] == "done"
    low = [await bot.services.low_queue.job(a.split("`")[1]) for a in queued]
    assert all(j is not None for j in low)                  # the outsider's jobs live in the low queue


async def test_the_hourly_rate_is_stricter_for_anyone_commands(redis_url):
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url)
    try:
        q = Quotas(r, QuotaConfig(queued_per_user=100, anyone_per_user_per_hour=3, per_user_per_hour=6))
        now = 1_800_000_000.0
        results = [await q.admit("U1", "C1", 1, anyone_command=True, maintainer=False, now=now) for _ in range(4)]
        assert results[:3] == ["", "", ""] and "asked for 3 job(s) this hour" in results[3]
        assert await q.admit("U1", "C1", 1, anyone_command=True, maintainer=True, now=now) == ""
        assert await q.admit("U1", "C1", 1, anyone_command=True, maintainer=False, now=now + 3600) == ""
    finally:
        await r.aclose()


async def test_a_person_spends_only_their_own_github_budget(make_bot, remote, github, slack):
    for n in (10, 11, 12):
        small_pr(github, number=n, head=f"{n:040x}")
    data = config_dict(remote)
    # One summary takes 3 calls, plus 3 the first time (looking for CODEOWNERS, then cached for an hour).
    data["quotas"] = {"github_calls_per_user_per_hour": 7}
    bot = await make_bot(data)

    async def summarize(n, user):
        _, body = await bot.slash("/summarize", f"PR#{n}", user=user)
        info = await bot.final(body["text"].split("`")[1])
        return info, bot.thread_of(info)

    info, _ = await summarize(10, OUTSIDER)
    assert info["status"] == "done"
    info, thread = await summarize(11, OUTSIDER)
    assert info["status"] == "failed" and "budget of 7 GitHub calls this hour" in thread
    assert len(github.calls) == 7                               # the eighth call was never made
    info, _ = await summarize(12, "UOTHER001")                  # someone else's budget is untouched
    assert info["status"] == "done"
