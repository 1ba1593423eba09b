"""Submitting jobs: one atomic step writes SAQ's job and our record, a live key is never queued twice, and the
job itself carries only what a worker reads."""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as aioredis

from core.kinds import Kind, Params
from core.queue import BotJob, JobRequest, job_info, make_queue, submit


@dataclass(frozen=True)
class Picked(Params):
    """A kind of this test's own: the queue knows no particular kind."""

    release: str
    ref: str


@dataclass(frozen=True)
class QuietPicked(Picked):
    quiet: bool = False


async def _nothing(job) -> None:
    return None


KIND = Kind("backport", "bp", Picked, _nothing)
QUIET = Kind("backport", "bp", QuietPicked, _nothing)


def request(**params) -> JobRequest:
    kind, cls = (QUIET, QuietPicked) if "quiet" in params else (KIND, Picked)
    return JobRequest(kind=kind, params=cls(release="9.1", **params), summary="backport é 😀 → 9.1",
                      requester="U1", channel="C1", origin={"comment": 7})


async def test_submit_writes_job_and_record_once_per_live_key(redis_url):
    queue, redis = make_queue(redis_url, name="tq"), aioredis.from_url(redis_url)
    try:
        first = await submit(queue, redis, request(ref="abc"))
        again = await submit(queue, redis, request(ref="abc"))
        assert first.created and not again.created and again.key == first.key
        info = await job_info(redis, first.key)
        assert info["summary"] == "backport é 😀 → 9.1" and info["requester"] == "U1" and info["run"] == "1"
        assert json.loads(info["params"]) == {"release": "9.1", "ref": "abc"}
        assert json.loads(info["origin"]) == {"comment": 7} and info["status"] == "queued"
        job = await queue.job(first.key)
        assert isinstance(job, BotJob)
        assert job.kwargs == {"request": {"kind": "backport", "params": {"release": "9.1", "ref": "abc"},
                                          "dest": "slack", "requester": "U1"}}
        # A short log line, without the request's (user-typed) parameters.
        assert job.info() == f"Job<{first.key} queued attempt 0>" and "abc" not in job.info()
        assert await redis.lrange(queue.announce_key, 0, -1) == [first.key.encode()]
        assert 0 < await redis.ttl(f"bot:job:{first.key}") <= 30 * 86400
    finally:
        await queue.disconnect()
        await redis.aclose()


async def test_a_fresh_request_after_the_last_one_ended_forgets_its_checkpoints(redis_url):
    queue, redis = make_queue(redis_url, name="tq2"), aioredis.from_url(redis_url)
    try:
        first = await submit(queue, redis, request(ref="def", quiet=True))
        assert await redis.llen(queue.announce_key) == 0           # quiet: no parent message announced
        name = f"bot:job:{first.key}"
        await redis.hset(f"{name}:stages", "fetch", "{}")
        await redis.hset(f"{name}:once", "1:final", "1")
        await redis.hset(name, "thread_ts", "111.222")
        job = await queue.job(first.key)
        await queue.finish(job, "complete")
        second = await submit(queue, redis, request(ref="def", quiet=True))
        assert second.created and second.key == first.key
        assert not await redis.exists(f"{name}:stages", f"{name}:once")
        assert "thread_ts" not in await job_info(redis, first.key)     # a new thread for a new request
    finally:
        await queue.disconnect()
        await redis.aclose()
