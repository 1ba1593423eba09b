"""The job queue: SAQ on Redis/Valkey. Submitting is idempotent by key: the same request while its job is
alive (queued, active or waiting to retry) returns the existing job instead of starting another.

Besides SAQ's own job record we keep `bot:job:<key>`, a hash with who asked, where the thread is and the
status shown to people; it lives 30 days, like the audit log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from saq import Job, Queue, Status
from saq.queue.redis import RedisQueue
from saq.utils import now

from core.kinds import BadParams, Kind, Params
from core.store import Store

log = logging.getLogger(__name__)

ALIVE = {Status.NEW, Status.QUEUED, Status.ACTIVE}


class QueueUnavailable(Exception):
    """The queue store did not answer; the user is told to try again."""


@dataclass
class JobRequest:
    """What a command, a webhook trigger or a button asks a worker to do: a kind and its typed parameters."""

    kind: Kind
    params: Params
    summary: str                      # one line for people: "backport abc1234 → 9.1"
    requester: str = ""               # Slack user ID; empty for GitHub-triggered jobs
    channel: str = ""                 # where the thread lives
    dest: str = "slack"               # which Chat posts it: "slack" or "console"
    origin: dict = field(default_factory=dict)  # e.g. the GitHub comment that asked
    priority: str = "normal"          # "low": webhook checks and outsiders' commands, served by their own slots
    response_url: str = ""            # where to answer the requester when the thread can't be posted
    after: dict = field(default_factory=dict)   # store keys set once the job is queued (a webhook's marks)

    def __post_init__(self) -> None:
        if not isinstance(self.params, self.kind.params):
            raise BadParams(f"a {self.kind.name} job takes {self.kind.params.__name__}, "
                            f"not {type(self.params).__name__}")
        if self.priority not in ("normal", "low"):
            raise ValueError(f"priority {self.priority!r} is neither normal nor low")

    def for_worker(self) -> dict:
        """What the job itself carries: what a worker reads. Where its thread is, and the summary, live in the
        job record, written in the same step; a small job is serialised faster at each of its status changes."""
        return {"kind": self.kind.name, "params": self.params.dump(), "dest": self.dest, "requester": self.requester}

    @property
    def key(self) -> str:
        """Same kind and params, same key: the canonical JSON of both, hashed."""
        return self.keyed()[0]

    def keyed(self) -> tuple[str, str]:
        """The key, and the params as JSON (sorted keys), which the job record keeps."""
        params = json.dumps(self.params.dump(), sort_keys=True)
        canonical = f'{{"kind": {json.dumps(self.kind.name)}, "params": {params}}}'
        if self.priority != "normal":      # lives in another queue: never the same job as a normal one
            canonical += f" {self.priority}"
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
        return f"{self.kind.prefix}-{digest}", params


@dataclass
class Submitted:
    key: str
    created: bool
    info: dict
    replayed: bool = False     # the request that asked was seen before: nothing done


OPEN = "bot:open"        # keys of jobs not yet known to have ended, scored by when they were queued


def latest_head_key(repo: str, number: int) -> str:
    """The head SHA of a PR's newest webhook provenance check: a re-run on the same head is skipped, and a
    check still waiting for an older head stands down."""
    return f"bot:prov:head:{repo}#{int(number)}"


def info_key(key: str) -> str:
    return f"bot:job:{key}"


class BotJob(Job):
    """A SAQ job whose log line is short (SAQ formats `info()` for every enqueue, start and finish, whether or
    not INFO is logged, and the default lists every field, the request's parameters (user input) included),
    and that never writes itself back once another worker has it: a worker whose job was swept (its heartbeat
    went quiet) and handed to another worker is `lost`, and its updates, finish and retry write nothing."""

    lost = False

    def info(self, full: bool = False) -> str:
        if full:
            return super().info(True)
        return f"Job<{self.key} {getattr(self.status, 'value', self.status)} attempt {self.attempts}>"

    async def still_mine(self) -> bool:
        """Whether the stored job is still this worker's run of it (sets `lost` when it is not)."""
        if self.lost:
            return False
        stored = await self.get_queue().job(self.key)
        mine = (stored is not None and stored.status in (Status.ACTIVE, Status.ABORTING)
                and stored.attempts == self.attempts and stored.worker_id == self.worker_id)
        if not mine:
            self.lost = True
        return mine

    async def _ours(self) -> bool:
        # A job touched within its heartbeat cannot have been swept: the common, fast path reads nothing.
        if self.lost:
            return False
        if self.heartbeat and self.touched and now() - self.touched < self.heartbeat * 1000 * 0.8:
            return True
        return await self.still_mine()

    async def update(self, **kwargs) -> None:
        if kwargs.get("status") == Status.ACTIVE and not self.lost:
            return await super().update(**kwargs)        # the dequeue marking the job as this worker's
        if await self._ours():
            await super().update(**kwargs)

    async def finish(self, status, *, result=None, error=None) -> None:
        if await self._ours():
            await super().finish(status, result=result, error=error)

    async def retry(self, error) -> None:
        if await self._ours():
            await super().retry(error)


class BotQueue(RedisQueue):
    """SAQ's Redis queue with our own sweep, which gives the job of a dead worker to another one.

    SAQ's sweep holds a 60 s lock (so recovery waits up to a minute whatever the timer says), and it treats
    a job its worker dequeued a moment ago, but has not yet marked active, as abandoned. Ours sweeps at most
    once per `sweep_every_s` across all workers, gives such a job a grace second, and re-queues a job whose
    heartbeat stopped. A job past its last attempt is re-queued once more, so the worker can say in its
    thread that it gave up instead of the job vanishing."""

    sweep_every_s = 10
    grace_s = 1.0

    @property
    def announce_key(self) -> str:
        """Keys of new jobs whose parent message is still to be posted."""
        return f"bot:announce:{self.name}"

    async def sweep(self, lock: int | None = None, abort: float = 5.0) -> list[str]:
        redis: Store = self.redis
        if not await redis.set(self._sweep, "1", nx=True, ex=max(1, int(lock or self.sweep_every_s))):
            return []
        swept = []
        for job_id in await redis.lrange(self._active, 0, -1):
            job = await self._get_job_by_id(job_id)
            if job is not None and job.status == Status.ACTIVE and not job.stuck:
                continue
            if job is not None and job.status != Status.ACTIVE:
                await asyncio.sleep(self.grace_s)   # dequeued, about to be marked active?
                job = await self._get_job_by_id(job_id)
                still = job_id in await redis.lrange(self._active, 0, -1)
                if not still or (job is not None and job.status == Status.ACTIVE and not job.stuck):
                    continue
            swept.append(job_id.decode() if isinstance(job_id, bytes) else job_id)
            if job is None:
                async with redis.pipeline(transaction=True) as pipe:
                    await pipe.lrem(self._active, 0, job_id).zrem(self._incomplete, job_id).execute()
                continue
            log.warning("job %s lost its worker (no heartbeat); putting it back on the queue", job.key)
            if not job.retryable:
                job.retries = job.attempts + 1
            await self.retry(job, error="worker lost (no heartbeat)")
        return swept


    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0):
        """SAQ's dequeue, but a store that does not answer is waited for (a second at a time) instead of being
        asked again at once: SAQ's worker loop would otherwise spin a core for as long as the store is down."""
        try:
            return await super().dequeue(timeout=timeout, poll_interval=poll_interval)
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
            log.warning("queue %s: the store does not answer (%s); retrying in 1 s", self.name,
                        exc.__class__.__name__)
            await asyncio.sleep(1)
            return None

    def deserialize(self, payload, status=None):
        """SAQ's deserialize, making BotJobs."""
        if not payload:
            return None
        job_dict = payload if isinstance(payload, dict) else self._load(payload)
        if job_dict.pop("queue") != self.name:
            raise ValueError(f"job {job_dict.get('key')} fetched by the wrong queue: {self.name}")
        if status:
            job_dict["status"] = status
        return BotJob(**job_dict, queue=self)

    _record_script = None

    async def enqueue_with_record(self, job: Job, record_key: str, record: dict, ttl_s: int,
                                  clear: list[str], announce: bool = True, seen: str = "") -> bool | None:
        """SAQ's keyed enqueue and our job record in one atomic round trip: the record is written (and the
        `clear` keys of an earlier run removed) only when the job was really enqueued, and the job's key is
        pushed onto the announce list, from which a worker posts its parent message at once (jobs.worker).
        `record` maps field names to strings; it travels as one JSON argument. `seen`: a key marking the asking
        request, set first; when it exists already the request is a replay and nothing happens (None).
        False: the key is alive."""
        if self._record_script is None:
            self._record_script = self.redis.register_script("""
                if ARGV[7] == '1' and not redis.call('SET', KEYS[7], '1', 'NX', 'EX', 600) then
                    return -1
                end
                if redis.call('ZSCORE', KEYS[1], KEYS[2]) or redis.call('EXISTS', KEYS[4]) == 1 then
                    return nil
                end
                redis.call('SET', KEYS[2], ARGV[1])
                redis.call('ZADD', KEYS[1], ARGV[2], KEYS[2])
                if ARGV[2] == '0' then redis.call('RPUSH', KEYS[3], KEYS[2]) end
                if ARGV[5] == '1' then redis.call('RPUSH', KEYS[6], ARGV[4]) end
                redis.call('DEL', KEYS[5], unpack(KEYS, 9))
                local fields = {}
                for k, v in pairs(cjson.decode(ARGV[6])) do
                    fields[#fields + 1] = k
                    fields[#fields + 1] = v
                end
                redis.call('HSET', KEYS[5], unpack(fields))
                redis.call('EXPIRE', KEYS[5], ARGV[3])
                redis.call('ZADD', KEYS[8], ARGV[8], ARGV[4])
                return 1
            """)
        job.queue = self
        job.queued = now()
        job.status = Status.QUEUED
        await self._before_enqueue(job)
        async with self._op_sem:
            done = await self._record_script(keys=[self._incomplete, job.id, self._queued, job.abort_id, record_key,
                                                   self.announce_key, seen or record_key, OPEN, *clear],
                                             args=[self.serialize(job), job.scheduled, ttl_s, job.key,
                                                   "1" if announce else "0", json.dumps(record),
                                                   "1" if seen else "0", f"{time.time():.3f}"],
                                             client=self.redis)
        return None if done == -1 else bool(done)


def make_queue(url: str, name: str = "bot", sweep_every_s: int = 10) -> BotQueue:
    queue = BotQueue(aioredis.from_url(url), name=name)
    queue.sweep_every_s = sweep_every_s
    return queue


async def job_info(redis: Store, key: str) -> dict:
    raw = await redis.hgetall(info_key(key))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def set_info(redis: Store, key: str, ttl_days: int = 30, **fields) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.hset(info_key(key), mapping={k: str(v) for k, v in fields.items()}).expire(
            info_key(key), ttl_days * 86400).execute()


async def submit(queue: BotQueue, redis: Store, req: JobRequest, *, timeout_s: int = 7200,
                 heartbeat_s: int = 30, retries: int = 3, ttl_days: int = 30, nonce: str = "") -> Submitted:
    """Enqueue `req` unless the same request is alive; raises QueueUnavailable when the store is down.
    `nonce` identifies the asking request (a Slack signature): the same nonce again is a replay, refused."""
    key, params = req.keyed()
    try:
        # SAQ's enqueue script refuses a key that is still incomplete (queued, active or waiting to retry),
        # which is exactly "alive": no separate look-up is needed.
        job = BotJob(function="run_job", key=key, kwargs={"request": req.for_worker()}, timeout=timeout_s,
                  heartbeat=heartbeat_s, retries=retries, retry_delay=2.0, retry_backoff=60.0,
                  ttl=ttl_days * 86400)
        info = {"kind": req.kind.name, "summary": req.summary, "requester": req.requester, "channel": req.channel,
                "dest": req.dest, "params": params, "origin": json.dumps(req.origin), "queue": queue.name,
                "response_url": req.response_url,
                "status": "queued", "run": "1", "created": f"{time.time():.3f}"}
        name = info_key(key)
        # A fresh request forgets the checkpoints and posted-once marks of any earlier run with this key.
        # Quiet jobs (webhook checks, no-ops) get no parent message unless they have something to say.
        seen = f"bot:seen:{hashlib.sha256(nonce.encode()).hexdigest()[:40]}:{key}" if nonce else ""
        done = await queue.enqueue_with_record(job, name, info, ttl_days * 86400,
                                               [f"{name}:stages", f"{name}:once", f"{name}:parent-claim"],
                                               announce=not req.params.is_quiet, seen=seen)
        if done is None:
            return Submitted(key, False, {}, replayed=True)
        if done:
            return Submitted(key, True, info)
        return Submitted(key, False, await job_info(redis, key))
    except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
        raise QueueUnavailable(str(exc)) from exc


async def requeue(queue: Queue, redis: Store, key: str, *, timeout_s: int = 7200, heartbeat_s: int = 30,
                  retries: int = 3, ttl_days: int = 30) -> bool:
    """Run a finished job again (the Retry button): same key, same thread, next run number."""
    info = await job_info(redis, key)
    if not info:
        return False
    existing = await queue.job(key)
    if existing is not None and existing.status in ALIVE:
        return False
    request = {k: info.get(k, "") for k in ("kind", "requester", "dest")}
    request["params"] = json.loads(info.get("params", "{}"))
    job = BotJob(function="run_job", key=key, kwargs={"request": request}, timeout=timeout_s, heartbeat=heartbeat_s,
              retries=retries, retry_delay=2.0, retry_backoff=60.0, ttl=ttl_days * 86400)
    if await queue.enqueue(job) is None:
        return False
    await redis.hincrby(info_key(key), "run", 1)
    await redis.hset(info_key(key), "status", "queued")
    await redis.zadd(OPEN, {key: time.time()})
    return True
