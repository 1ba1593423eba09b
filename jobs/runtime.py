"""What a running job works with: its thread in chat, its audit log, and named stages with checkpoints.

A job is a pipeline of stages. `JobRun.stage(name, fn)` shows the stage on the parent message, writes the
audit entries and stores the stage's (JSON) result, so a job picked up again after a worker died, or retried
from its Retry button, starts from the first stage not yet done. A stage raises `NeedsPerson` to escalate or
`JobFailed` for a plain, final failure (a bad ref, say).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from core import homes, render
from core.audit import Audit, scrub
from core.chat import Chat
from core.queue import info_key, job_info, set_info
from core.store import Store

log = logging.getLogger(__name__)


class NeedsPerson(Exception):
    def __init__(self, escalation: render.Escalation):
        super().__init__(f"{escalation.stage}: {escalation.reason}")
        self.escalation = escalation


class RecordLost(Exception):
    """The job's record (its channel, thread, run) is not in the store: evicted, or never written."""


class JobFailed(Exception):
    """A final failure with a reason people can act on; not retried."""


class JobThread:
    """The parent message and its thread. The parent is posted once, by whoever gets there first (the
    command right after its ack, or the worker), guarded by a claim in Redis."""

    def __init__(self, chat: Chat, redis: Store, key: str, *, ttl_days: int = 30, info: dict | None = None,
                 secrets: list[str] | tuple[str, ...] = ()):
        self.chat = chat
        self.redis = redis
        self.key = key
        self.ttl_days = ttl_days
        self.secrets = list(secrets)          # scrubbed from everything this thread posts
        self._info: dict | None = dict(info) if info else None

    def _clean(self, text: str, blocks: list | None = None) -> tuple[str, list | None]:
        if not self.secrets:
            return text, blocks
        if blocks is not None:
            blocks = json.loads(scrub(json.dumps(blocks), [json.dumps(s)[1:-1] for s in self.secrets]))
        return scrub(text, self.secrets), blocks

    async def info(self, refresh: bool = False) -> dict:
        if self._info is None or refresh:
            self._info = await job_info(self.redis, self.key)
            if not self._info.get("channel") and not self._info.get("kind"):
                raise RecordLost(self.key)
        return self._info

    def _parent_text(self, info: dict, status: str, detail: str = "") -> str:
        return render.parent_text(self.key, info.get("summary", ""), info.get("requester", ""), status, detail)

    async def parent_ts(self, wait_s: float = 10.0) -> str:
        info = await self.info()
        if info.get("thread_ts"):
            return info["thread_ts"]
        claim = f"{info_key(self.key)}:parent-claim"
        deadline = time.monotonic() + wait_s
        while True:
            if await self.redis.set(claim, "1", nx=True, ex=120):
                # Whoever holds the claim is the only one to post; the claim outlives the post.
                try:
                    ts = await self.chat.post(info["channel"], self._parent_text(info, info.get("status", "queued")))
                except Exception:
                    await self.redis.delete(claim)       # not posted: the next one to try need not wait
                    raise
                await self.redis.hset(info_key(self.key), "thread_ts", ts)
                info["thread_ts"] = ts
                return ts
            await asyncio.sleep(0.1)
            info = await self.info(refresh=True)
            if info.get("thread_ts"):
                return info["thread_ts"]
            if time.monotonic() > deadline:  # the claimant died before posting: take over
                await self.redis.delete(claim)

    async def status(self, status: str, detail: str = "") -> None:
        info = await self.info(refresh=True)
        if info.get("status") == status and info.get("detail", "") == detail and info.get("thread_ts"):
            return
        detail = self._clean(detail)[0]
        ts = await self.parent_ts()
        await set_info(self.redis, self.key, self.ttl_days, status=status, detail=detail)
        await self.chat.update(info["channel"], ts, self._parent_text(info, status, detail))

    async def reply(self, text: str, blocks: list | None = None, once: str | None = None) -> str | None:
        """A reply in the thread. With `once`, the same mark in the same run is posted only once, so a job
        resumed after a crash does not repeat what it already said."""
        info = await self.info()
        if once and not await self.claim(once):
            return None
        ts = await self.parent_ts()
        text, blocks = self._clean(text, blocks)
        try:
            return await self.chat.post(info["channel"], text, blocks, thread_ts=ts)
        except Exception:
            if once:  # not posted: let a later attempt post it
                await self.unclaim(once)
            raise

    async def _mark(self, mark: str) -> tuple[str, str]:
        """The hash holding this job's once-marks, and `mark`'s field in it for the current run."""
        info = await self.info()
        return f"{info_key(self.key)}:once", f"{info.get('run', '1')}:{mark}"

    async def claim(self, mark: str) -> bool:
        """True the first time `mark` is claimed in this run of the job (an effect done at most once, even
        by a worker that picks the job up after another died)."""
        name, field = await self._mark(mark)
        if not await self.redis.hsetnx(name, field, "1"):
            return False
        await self.redis.expire(name, self.ttl_days * 86400)
        return True

    async def claimed(self, mark: str) -> bool:
        return bool(await self.redis.hexists(*await self._mark(mark)))

    async def set_mark(self, mark: str, value: str) -> None:
        """A value kept beside the once-marks of this run (e.g. the URL an effect produced)."""
        name, field = await self._mark(f"value:{mark}")
        await self.redis.hset(name, field, value)
        await self.redis.expire(name, self.ttl_days * 86400)

    async def mark(self, mark: str) -> str:
        name, field = await self._mark(f"value:{mark}")
        raw = await self.redis.hget(name, field)
        return raw.decode() if isinstance(raw, bytes) else (raw or "")

    async def unclaim(self, mark: str) -> None:
        """The effect certainly did not happen (its call failed with an answer): a later attempt may do it."""
        await self.redis.hdel(*await self._mark(mark))


class JobRun:
    """One attempt at one job: the request, the services, the thread and the audit log."""

    def __init__(self, key: str, request: dict, services, chat: Chat, attempt: int = 1, params: Any = None):
        self.key = key
        self.request = request
        self.kind: str = request["kind"]
        self.params: Any = params          # the kind's typed Params, read back and checked by the worker
        self.services = services
        self.config = services.config
        self.redis = services.redis
        self.attempt = attempt
        self.thread = JobThread(chat, services.redis, key, ttl_days=services.config.queue.audit_ttl_days,
                                secrets=services.config.env.secrets())
        self.audit = Audit(services.redis, key, services.config.queue.audit_ttl_days, services.config.env.secrets())

    @property
    def stages_key(self) -> str:
        return f"{info_key(self.key)}:stages"

    async def stage(self, name: str, fn: Callable[[], Awaitable[Any]], *, detail: str = "") -> Any:
        stored = await self.redis.hget(self.stages_key, name)
        if stored is not None:
            await self.audit.write(name, "resumed", "already done in an earlier attempt")
            return json.loads(stored)
        if not getattr(self.params, "is_quiet", False):     # a quiet job has no parent message to update
            await self.thread.status("running", detail or name)
        await self.audit.write(name, "start", detail)
        started = time.monotonic()
        try:
            result = await fn()
        except NeedsPerson as exc:
            await self.audit.write(name, "needs-person", exc.escalation.reason)
            raise
        except JobFailed as exc:
            await self.audit.write(name, "failed", str(exc))
            raise
        except Exception as exc:
            await self.audit.write(name, "error", f"{exc.__class__.__name__}: {exc}")
            raise
        await self.redis.hset(self.stages_key, name, json.dumps(result))
        await self.redis.expire(self.stages_key, self.config.queue.audit_ttl_days * 86400)
        await self.audit.write(name, "done", f"{time.monotonic() - started:.2f}s")
        return result

    async def forget_stages(self, *names: str) -> None:
        if names:
            await self.redis.hdel(self.stages_key, *names)

    async def say(self, text: str, blocks: list | None = None, once: str | None = None) -> None:
        await self.audit.write("thread", "reply", text)
        await self.thread.reply(text, blocks, once=once)

    async def done(self, text: str, blocks: list | None = None, detail: str = "") -> None:
        """Finish: a last reply (none when text is empty) and the parent marked done."""
        if text:
            await self.say(text, blocks if blocks is not None else render.final_blocks(text, self.key), once="final")
        await self.thread.status("done", detail)

    async def escalate(self, esc: render.Escalation) -> None:
        run = (await self.thread.info()).get("run", "1")
        text, blocks = render.escalation_blocks(self.key, esc, self.config.slack.maintainers, run)
        await self.audit.write(esc.stage, "escalated", esc.reason, files=esc.files, commands=esc.commands)
        await self.thread.reply(text, blocks, once="final")
        await self.thread.status("needs a maintainer", f"{esc.stage}: {esc.reason}"[:200])
        await homes.escalated(self.redis, self.key)          # maintainers' Homes list it

    async def fail(self, reason: str) -> None:
        await self.audit.write("job", "failed", reason)
        text = f":x: {render.inert(reason)}"
        await self.thread.reply(text, render.final_blocks(text, self.key), once="final")
        await self.thread.status("failed", reason[:200])
