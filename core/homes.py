"""What the App Home needs to know, kept small and dependency-free so any layer can note a change: who opened
their Home lately (`seen`), whose Home is out of date (`dirty`, published by the workers' loop in jobs/home.py),
each person's recent jobs, the escalations waiting for a person, and recent jobs of the kinds whose results are
counted there."""

from __future__ import annotations

import time

SEEN = "bot:home:seen"              # user -> when they last opened the Home tab
DIRTY = "bot:home:dirty"            # users whose Home is to be published again
ESCALATED = "bot:home:escalated"    # job keys waiting for a person, by when
SEEN_DAYS = 14
COUNTED_KINDS = ("provenance", "adversarial")


def user_jobs_key(user: str) -> str:
    return f"bot:home:jobs:{user}"


def kind_jobs_key(kind: str) -> str:
    return f"bot:home:kind:{kind}"


async def mark_dirty(redis, *users: str) -> None:
    users = tuple(u for u in users if u)
    if users:
        await redis.sadd(DIRTY, *users)


async def mark_watchers(redis) -> None:
    """Everyone who opened their Home lately: what maintainers see there changed (an escalation came or went)."""
    recent = await redis.zrangebyscore(SEEN, time.time() - SEEN_DAYS * 86400, "+inf")
    if recent:
        await redis.sadd(DIRTY, *recent)


async def note_job(redis, key: str, requester: str, kind: str, ttl_s: int) -> None:
    """A new job: on its requester's list (the last 50 kept) and, for counted kinds, on its kind's."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        if requester:
            name = user_jobs_key(requester)
            pipe.zadd(name, {key: now}).zremrangebyrank(name, 0, -51).expire(name, ttl_s)
        if kind in COUNTED_KINDS:
            name = kind_jobs_key(kind)
            pipe.zadd(name, {key: now}).zremrangebyscore(name, "-inf", now - 7 * 86400).expire(name, ttl_s)
        await pipe.execute()


async def escalated(redis, key: str) -> None:
    await redis.zadd(ESCALATED, {key: time.time()})
    await mark_watchers(redis)


async def settled(redis, key: str) -> None:
    """Retried or dismissed: no longer waiting for a person."""
    if await redis.zrem(ESCALATED, key):
        await mark_watchers(redis)
