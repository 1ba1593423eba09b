"""The job queue: SAQ on Redis/Valkey. Submitting is idempotent by key: the same request while its job is
alive (queued, active or waiting to retry) returns the existing job instead of starting another.

Besides SAQ's own job record we keep `bot:job:<key>`, a hash with who asked, where the thread is and the
status shown to people; it lives 30 days, like the audit log.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field

import redis.asyncio as aioredis
from saq import Job, Queue, Status

ALIVE = {Status.NEW, Status.QUEUED, Status.ACTIVE}
PREFIXES = {"backport": "bp", "summarize": "sum", "firstissue": "fi", "provenance": "prov",
            "adversarial": "adv", "selftest": "st"}


class QueueUnavailable(Exception):
    """The queue store did not answer; the user is told to try again."""


@dataclass
class JobRequest:
    """What a command or webhook asks a worker to do."""

    kind: str
    params: dict
    summary: str                      # one line for people: "backport abc1234 → 9.1"
    requester: str = ""               # Slack user ID; empty for GitHub-triggered jobs
    channel: str = ""                 # where the thread lives
    dest: str = "slack"               # which Chat posts it: "slack" or "console"
    origin: dict = field(default_factory=dict)  # e.g. the GitHub comment that asked

    @property
    def key(self) -> str:
        canonical = json.dumps({"kind": self.kind, "params": self.params}, sort_keys=True)
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
        return f"{PREFIXES.get(self.kind, self.kind)}-{digest}"


@dataclass
class Submitted:
    key: str
    created: bool
    info: dict


def info_key(key: str) -> str:
    return f"bot:job:{key}"


def make_queue(url: str, name: str = "bot") -> Queue:
    return Queue.from_url(url, name=name)


async def job_info(redis: aioredis.Redis, key: str) -> dict:
    raw = await redis.hgetall(info_key(key))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def set_info(redis: aioredis.Redis, key: str, ttl_days: int = 30, **fields) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.hset(info_key(key), mapping={k: str(v) for k, v in fields.items()}).expire(
            info_key(key), ttl_days * 86400).execute()


async def submit(queue: Queue, redis: aioredis.Redis, req: JobRequest, *, timeout_s: int = 7200,
                 heartbeat_s: int = 30, retries: int = 3, ttl_days: int = 30) -> Submitted:
    """Enqueue `req` unless the same request is alive; raises QueueUnavailable when the store is down."""
    key = req.key
    try:
        existing = await queue.job(key)
        if existing is not None and existing.status in ALIVE:
            return Submitted(key, False, await job_info(redis, key))
        job = Job(function="run_job", key=key, kwargs={"request": asdict(req)}, timeout=timeout_s,
                  heartbeat=heartbeat_s, retries=retries, retry_delay=2.0, retry_backoff=60.0,
                  ttl=ttl_days * 86400)
        if await queue.enqueue(job) is None:
            return Submitted(key, False, await job_info(redis, key))
        # A fresh request: forget the checkpoints and posted-once marks of any earlier run with this key.
        await redis.delete(info_key(key), f"{info_key(key)}:stages", f"{info_key(key)}:once")
        await set_info(redis, key, ttl_days, kind=req.kind, summary=req.summary, requester=req.requester,
                       channel=req.channel, dest=req.dest, params=json.dumps(req.params), origin=json.dumps(req.origin),
                       status="queued",
                       run=1, created=round(time.time(), 3))
        return Submitted(key, True, await job_info(redis, key))
    except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
        raise QueueUnavailable(str(exc)) from exc


async def requeue(queue: Queue, redis: aioredis.Redis, key: str, *, timeout_s: int = 7200, heartbeat_s: int = 30,
                  retries: int = 3) -> bool:
    """Run a finished job again (the Retry button): same key, same thread, next run number."""
    info = await job_info(redis, key)
    if not info:
        return False
    existing = await queue.job(key)
    if existing is not None and existing.status in ALIVE:
        return False
    request = {k: info.get(k, "") for k in ("kind", "summary", "requester", "channel", "dest")}
    request["params"] = json.loads(info.get("params", "{}"))
    request["origin"] = json.loads(info.get("origin", "{}") or "{}")
    job = Job(function="run_job", key=key, kwargs={"request": request}, timeout=timeout_s, heartbeat=heartbeat_s,
              retries=retries, retry_delay=2.0, retry_backoff=60.0, ttl=30 * 86400)
    if await queue.enqueue(job) is None:
        return False
    await redis.hincrby(info_key(key), "run", 1)
    await redis.hset(info_key(key), "status", "queued")
    return True
