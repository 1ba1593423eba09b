"""The SAQ seam: what core/queue.py's BotQueue relies on in SAQ, checked against the installed SAQ, so an upgrade
that changes any of it fails here, loudly and by name, instead of somewhere in a worker.

BotQueue uses SAQ's public API where it serves (Queue.enqueue, job, dequeue, sweep, retry, count, the Worker's
timers and before-enqueue hooks) and a few internals: the key names (`_incomplete`, `_queued`, `_active`,
`_sweep`), `_op_sem`, `_before_enqueue`, `_get_job_by_id`, `_load`, and the semantics of the private enqueue
script that `enqueue_with_record` extends. pyproject pins `saq>=0.26,<0.27`."""

from __future__ import annotations

import hashlib
import inspect
import re
import tomllib
from importlib import metadata
from pathlib import Path

import redis.asyncio as aioredis
from saq import Job, Status
from saq.queue.base import Queue
from saq.queue.redis import RedisQueue

from core.queue import BotJob, BotQueue, make_queue

ROOT = Path(__file__).resolve().parents[2]
# SAQ 0.26's enqueue script, whitespace aside: enqueue_with_record does exactly this, plus our record.
SAQ_ENQUEUE_SCRIPT = (
    "if not redis.call('ZSCORE', KEYS[1], KEYS[2]) and redis.call('EXISTS', KEYS[4]) == 0 then "
    "redis.call('SET', KEYS[2], ARGV[1]) redis.call('ZADD', KEYS[1], ARGV[2], KEYS[2]) "
    "if ARGV[2] == '0' then redis.call('RPUSH', KEYS[3], KEYS[2]) end return 1 else return nil end")


def normalised(text: str) -> str:
    return " ".join(text.split())


def test_the_installed_saq_is_in_the_pinned_range():
    spec = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                if d.startswith("saq"))
    low, high = re.search(r">=([\d.]+),<([\d.]+)", spec).groups()
    version = tuple(int(x) for x in metadata.version("saq").split(".")[:2])
    assert tuple(int(x) for x in low.split(".")[:2]) <= version < tuple(int(x) for x in high.split(".")[:2]), \
        f"saq {metadata.version('saq')} is outside {spec}: re-check this file's assumptions, then move the pin"


async def test_the_internals_botqueue_uses_exist(redis_url):
    queue = make_queue(redis_url, name="seam")
    try:
        for name in ("_incomplete", "_queued", "_active", "_sweep", "_op_sem"):
            assert hasattr(queue, name), f"SAQ's RedisQueue no longer has {name}"
        assert queue._incomplete == "saq:seam:incomplete" and queue._queued == "saq:seam:queued"
        assert queue._active == "saq:seam:active" and queue._sweep == "saq:seam:sweep"
        for name in ("_before_enqueue", "_get_job_by_id", "_load", "serialize", "retry", "job", "count"):
            assert callable(getattr(queue, name, None)), f"SAQ's RedisQueue no longer has {name}()"
        job = BotJob(function="f", key="k", queue=queue)
        for name in ("id", "abort_id", "stuck", "retryable", "heartbeat", "touched", "attempts", "worker_id"):
            assert hasattr(job, name), f"SAQ's Job no longer has {name}"
    finally:
        await queue.disconnect()


def test_the_signatures_botqueue_overrides_are_unchanged():
    assert list(inspect.signature(RedisQueue.sweep).parameters) == ["self", "lock", "abort"]
    assert list(inspect.signature(RedisQueue.dequeue).parameters) == ["self", "timeout", "poll_interval"]
    assert list(inspect.signature(RedisQueue.deserialize).parameters) == ["self", "payload", "status"]
    for name in ("update", "finish", "retry"):
        assert name in vars(Job), f"SAQ's Job.{name} moved: BotJob's guards would be skipped"
    assert list(inspect.signature(Job.finish).parameters) == ["self", "status", "result", "error"]


def test_the_private_enqueue_script_is_the_one_we_extend():
    source = inspect.getsource(RedisQueue._enqueue)
    script = re.search(r'"""(.*?)"""', source, re.S).group(1)
    assert normalised(script) == SAQ_ENQUEUE_SCRIPT, (
        "SAQ's enqueue script changed (sha1 " + hashlib.sha1(normalised(script).encode()).hexdigest()[:12] +
        "): core/queue.py's enqueue_with_record copies its semantics and must follow")
    # SAQ's enqueue runs the before-enqueue hooks, then the script; enqueue_with_record does the same.
    assert "await self._before_enqueue(job)" in inspect.getsource(Queue.enqueue)


async def test_a_job_enqueued_with_its_record_is_stored_as_saqs_own_enqueue_stores_it(redis_url):
    """The same job through SAQ's enqueue and through ours: the same keys, the same stored job, and SAQ's
    dequeue hands both out as BotJobs."""
    ours, theirs = make_queue(redis_url, name="seam-ours"), make_queue(redis_url, name="seam-saq")
    redis = aioredis.from_url(redis_url)
    try:
        a = BotJob(function="run_job", key="same", kwargs={"x": 1}, timeout=10, heartbeat=2, retries=2)
        b = BotJob(function="run_job", key="same", kwargs={"x": 1}, timeout=10, heartbeat=2, retries=2)
        assert await theirs.enqueue(a) is not None
        assert await ours.enqueue_with_record(b, "bot:job:seam-test", {"status": "queued"}, 60, [],
                                              announce=False) is True
        assert await ours.enqueue_with_record(b, "bot:job:seam-test", {"status": "queued"}, 60, [],
                                              announce=False) is False        # alive: not twice
        for q, job in ((theirs, a), (ours, b)):
            assert await redis.zscore(q._incomplete, job.id) is not None
            assert await redis.lrange(q._queued, 0, -1) == [job.id.encode()]
            stored = q.deserialize(await redis.get(job.id))
            assert isinstance(stored, BotJob) and stored.kwargs == {"x": 1} and stored.status == Status.QUEUED
        assert await redis.hget("bot:job:seam-test", "status") == b"queued"
        for q in (theirs, ours):
            got = await q.dequeue(timeout=1)
            assert isinstance(got, BotJob) and got.key == "same"
    finally:
        for q in (ours, theirs):
            await q.disconnect()
        await redis.aclose()


def test_botqueue_is_a_redis_queue():
    assert issubclass(BotQueue, RedisQueue) and issubclass(BotJob, Job)
