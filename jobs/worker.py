"""`python -m jobs.worker`: runs queued jobs. Any number of workers on any number of machines share one
Redis/Valkey; SAQ hands each job to one of them, a heartbeat shows it is alive, and a sweep gives the job of a
worker that died to another one, which resumes from the first stage not yet done."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time

from prometheus_client import start_http_server
from saq import CronJob, Worker

from core import config as config_mod
from core import homes, render, slack
from core.audit import scrub
from core.chat import CannotPost, Chat
from core.kinds import BadParams
from core.llm import ModelError
from core.logs import setup as setup_logging
from core.queue import OPEN, job_info, set_info
from core.quotas import OverBudget, spender
from core.services import Services
from core.store import require_store, resolve
from jobs import backport_sweep, firstissue, home
from jobs.kinds import KINDS
from jobs.runtime import JobFailed, JobRun, JobThread, NeedsPerson, RecordLost

log = logging.getLogger(__name__)


async def run_job(ctx: dict, *, request: dict) -> str:
    """The one SAQ function: look up the job's kind and run it inside a JobRun; its duration is measured by
    kind and outcome (done, escalated, failed, …; `retry` and `stopped` when it goes back on the queue)."""
    services: Services = ctx["services"]
    kind = KINDS.get(request.get("kind", ""))
    started = time.monotonic()
    outcome = "retry"
    try:
        outcome = await _run_job(ctx, request)
        return outcome
    except asyncio.CancelledError:
        outcome = "stopped"
        raise
    finally:
        services.metrics.job_seconds.labels(kind=kind.name if kind else "unknown", outcome=outcome) \
            .observe(time.monotonic() - started)


async def _run_job(ctx: dict, request: dict) -> str:
    services: Services = ctx["services"]
    job = ctx["job"]
    chat = services.chats.get(request.get("dest", "slack"))
    if chat is None:
        log.error("job %s wants chat %r, which this worker does not have", job.key, request.get("dest"))
        return "no-chat"
    kind = KINDS.get(request.get("kind", ""))
    try:
        params = kind.load(request.get("params")) if kind is not None else None
    except BadParams as exc:
        params, bad = None, str(exc)
    else:
        bad = ""
    run = JobRun(job.key, request, services, chat, attempt=job.attempts, params=params)
    beats: Heartbeats = ctx["heartbeats"]
    beats.add(job, asyncio.current_task())
    services.metrics.jobs_started.labels(kind=kind.name if kind else "unknown").inc()
    # GitHub calls and model tokens count for whoever asked (GitHub-triggered jobs share one budget).
    spender.set(request.get("requester") or "github")
    ended = True
    await _note_home(services, request, job.key)
    try:
        if job.attempts > 1:
            await run.audit.write("job", "retry", f"attempt {job.attempts} (previous: {job.error or 'worker lost'})")
        if job.attempts > services.config.queue.retries:
            await run.fail(f"gave up after {job.attempts - 1} attempts: {str(job.error or 'worker lost')[:200]}")
            return "gave-up"
        if kind is None:
            await run.fail(f"no worker knows how to run a {render.inert(run.kind)} job")
            return "unknown-kind"
        if params is None:
            await run.fail(f"the job's parameters do not fit a {kind.name} job: {bad}")
            return "bad-params"
        await kind.run(run)
        return "done"
    except RecordLost:
        ended = False           # nothing to close: the record (and its accounting) is gone
        return await _record_lost(services, job.key, request)
    except CannotPost as exc:
        return await _cannot_post(services, run, exc)
    except NeedsPerson as exc:
        await run.escalate(exc.escalation)
        return "escalated"
    except (JobFailed, OverBudget) as exc:
        await run.fail(str(exc))
        return "failed"
    except asyncio.CancelledError:
        ended = False
        if getattr(job, "lost", False):
            await run.audit.write("job", "lost", f"attempt {job.attempts} stopped: another worker runs the job now")
        else:
            await run.audit.write("job", "cancelled", "worker stopping; the job goes back on the queue")
        raise
    except ModelError as exc:
        if exc.retryable and job.retryable:
            ended = False
            await run.audit.write("job", "will-retry", f"the model: {exc.kind}")
            raise RetryLater(scrub(str(exc)[:2000], services.config.env.secrets())) from None
        await run.fail(f"the model could not answer ({exc.kind}: {exc.sdk_name}); nothing it would have proposed "
                       "was used")
        return "failed"
    except Exception as exc:
        log.exception("job %s failed", job.key)
        if job.retryable:
            ended = False
            await run.audit.write("job", "will-retry", f"{exc.__class__.__name__}: {exc}")
            # SAQ keeps the traceback in the job record: keep it to this line and a scrubbed message.
            raise RetryLater(scrub(f"{exc.__class__.__name__}: {exc}"[:2000], services.config.env.secrets())) from None
        await run.fail(f"the job stopped with an internal error after {job.attempts} attempts "
                       f"({exc.__class__.__name__}: {str(exc)[:200]}); the audit log has the details")
        return "failed"
    finally:
        await beats.remove(job)
        await _note_home(services, request, "")
        if ended and request.get("requester"):
            with contextlib.suppress(Exception):
                info = await run.thread.info()
                await services.quotas.closed(request.get("requester", ""), info.get("channel", ""), job.key)


async def _note_home(services: Services, request: dict, started: str) -> None:
    """The requester's Home shows this job: listed when it starts (`started`, its key; here, not on the ack
    path), and marked for the publisher whenever its status changes."""
    with contextlib.suppress(Exception):
        requester, kind = request.get("requester", ""), request.get("kind", "")
        if started and (requester or kind in homes.COUNTED_KINDS):
            await homes.note_job(services.redis, started, requester, kind, services.config.queue.ttl_s)
        await homes.mark_dirty(services.redis, requester)


async def _cannot_post(services: Services, run: JobRun, exc: Exception) -> str:
    """The conversation the command came from is one the bot can't post in: the job can't report, so it ends
    failed in its record, and the person who asked hears why through the command's response_url."""
    reason = ("I can't post in this conversation (a private channel I am not in, or a direct message between "
              "people), so the job was not run. Invite me here, or run the command in a channel I am in.")
    await run.audit.write("job", "failed", f"{reason} ({exc})")
    await set_info(services.redis, run.key, services.config.queue.audit_ttl_days, status="failed",
                   detail="can't post in the conversation")
    info = await run.thread.info(refresh=True)
    chat = services.chats.get(info.get("dest", ""))
    if info.get("response_url") and chat is not None and hasattr(chat, "respond"):
        try:
            await chat.respond(info["response_url"], f":x: Job `{run.key}`: {reason}")
        except Exception as err:
            log.warning("could not answer %s through its response_url: %s", run.key, err)
    return "cannot-post"


async def _record_lost(services: Services, key: str, request: dict) -> str:
    """The job's record (its channel, thread, run) is gone, e.g. evicted by a store that evicts keys: the job
    can't report where it was asked, so it does not run, and says so where the operator looks."""
    log.error("job %s has no record in the store (evicted?); not running it", key)
    services.metrics.jobs_lost.labels(what="record").inc()
    channel = services.config.slack.notify_channel
    chat = services.chats.get("slack") or services.chats.get("console")
    if channel and chat is not None:
        try:
            await chat.post(channel, f":x: Job `{key}` ({render.inert(request.get('kind', '?'))}) lost its record "
                                     "in the queue store (is it evicting keys?), so it was not run. Ask for it again.")
        except Exception as exc:
            log.warning("could not report the lost record of %s: %s", key, exc)
    return "record-lost"


async def reconcile(services: Services, grace_s: float = 120, limit: int = 200) -> list[str]:
    """Records that say a job is queued or running while its queue entry is gone (evicted, or lost some other
    way) end as a visible failure; records that ended leave the open set. Returns the keys failed."""
    failed = []
    cutoff = time.time() - grace_s
    for raw in await services.redis.zrangebyscore(OPEN, 0, cutoff, start=0, num=limit):
        key = raw.decode() if isinstance(raw, bytes) else raw
        info = await job_info(services.redis, key)
        if not info or info.get("status") in ("done", "failed", "needs a maintainer", "dismissed"):
            await services.redis.zrem(OPEN, key)
            continue
        if await services.queue_named(info.get("queue", "")).job(key) is not None:
            continue
        failed.append(key)
        await services.redis.zrem(OPEN, key)
        services.metrics.jobs_lost.labels(what="queue").inc()
        reason = "the job vanished from the queue store (is it evicting keys?); ask for it again"
        chat = services.chats.get(info.get("dest", ""))
        try:
            if chat is not None and info.get("channel"):
                thread = JobThread(chat, services.redis, key, info=info, ttl_days=services.config.queue.audit_ttl_days)
                await thread.reply(f":x: {reason}", once="final")
                await thread.status("failed", reason)
            else:
                await set_info(services.redis, key, status="failed", detail=reason)
        except Exception as exc:
            log.warning("could not report the lost job %s: %s", key, exc)
            await set_info(services.redis, key, status="failed", detail=reason)
    return failed


class RetryLater(Exception):
    """An unexpected error, re-raised for SAQ's retry with its message scrubbed of secrets."""


async def sweeps(ctx: dict) -> list[str]:
    """Every minute: the backport sweeps whose cron fires now (one worker of many enqueues each)."""
    services: Services = ctx["services"]
    return await backport_sweep.schedule(services, services.clock())


async def follow_ups(ctx: dict) -> list[str]:
    """Periodic (cron) work: first-issue nudges and returns, and records whose queue entry vanished."""
    services: Services = ctx["services"]
    lost = await reconcile(services)
    return await firstissue.follow_up(services, services.clock()) + [f"lost {k}" for k in lost]


class Heartbeats:
    """One loop per worker touches every running job a few times per heartbeat period, so the sweep can tell a
    live job from one whose worker died. SAQ's update reads the job's status and then writes the job back, so
    a touch must never straddle the job's end (it would write a finished job back as active): each job has a
    lock, and removing a job waits for a touch in flight."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.jobs: dict = {}
        self.tasks: dict = {}

    def add(self, job, task: asyncio.Task | None = None) -> None:
        """Beat for `job`; `task` runs it, and is cancelled if the job turns out to be another worker's now."""
        self.jobs[job] = asyncio.Lock()
        if task is not None:
            self.tasks[job] = task

    async def remove(self, job) -> None:
        lock = self.jobs.pop(job, None)
        self.tasks.pop(job, None)
        if lock is not None:
            async with lock:
                pass

    async def run(self) -> None:
        while True:
            await asyncio.sleep(max(self.every_s / 3, 0.2))
            for job, lock in list(self.jobs.items()):
                async with lock:
                    if self.jobs.get(job) is not lock:       # it ended meanwhile
                        continue
                    try:
                        if hasattr(job, "still_mine") and not await job.still_mine():
                            # Swept while this worker was silent, and handed on: stop, write nothing back.
                            log.warning("job %s was given to another worker; stopping this run", job.key)
                            task = self.tasks.pop(job, None)
                            if task is not None:
                                task.cancel()
                            continue
                        await job.update()
                    except Exception as exc:  # the store is down: the sweep decides, not us
                        log.warning("heartbeat for %s failed: %s", job.key, exc)


async def announce(services: Services, width: int = 8) -> None:
    """Post the parent message of every newly queued job at once, whether or not a job slot is free, so the
    web process only verifies, authorises and enqueues. Runs beside the job slots in every worker."""
    sem = asyncio.Semaphore(width)
    pending: set[asyncio.Task] = set()

    async def post(key: str) -> None:
        async with sem:
            try:
                info = await job_info(services.redis, key)
                chat = services.chats.get(info.get("dest", ""))
                quiet = json.loads(info.get("params") or "{}").get("quiet")   # speaks only if it finds something
                if chat is not None and info.get("channel") and not info.get("thread_ts") and not quiet:
                    await JobThread(chat, services.redis, key, info=info).parent_ts()
            except Exception as exc:   # the job posts its parent itself when it starts
                log.warning("could not post the parent message of %s: %s", key, exc)

    names = [services.queue.announce_key, services.low_queue.announce_key]
    while True:
        try:
            item = await services.redis.blpop(names, timeout=1)
        except asyncio.CancelledError:
            raise
        except Exception as exc:       # the store is down: wait, the job is not lost
            log.warning("announce: %s", exc)
            await asyncio.sleep(1)
            continue
        if item:
            task = asyncio.create_task(post(item[1].decode()))
            pending.add(task)
            task.add_done_callback(pending.discard)


class _Slots(Worker):
    """A SAQ worker that leaves SIGTERM/SIGINT to `Workers` (two SAQ workers in one process would each take the
    signal handler from the other, and one of them would never stop)."""

    SIGNALS: list = []


class Workers:
    """One worker process's job slots: SAQ workers for the normal queue (`[queue] concurrency` slots) and for
    the low-priority queue (`[quotas] low_concurrency` slots, default 1), so webhook checks and outsiders'
    commands run beside maintainers' jobs, never ahead of them, and can't take every slot."""

    def __init__(self, services: Services, *, concurrency: int | None = None, **kwargs):
        q = services.config.queue
        self.services = services
        self.tasks: list[asyncio.Task] = []
        self.heartbeats = Heartbeats(q.heartbeat_s)

        async def startup(ctx):
            ctx["services"] = services
            ctx["heartbeats"] = self.heartbeats

        common = dict(functions=[run_job], startup=startup, shutdown_grace_period_s=0,
                      timers={"sweep": q.sweep_s, "abort": 1, "schedule": 1}, **kwargs)
        self.main = _Slots(services.queue, concurrency=concurrency or q.concurrency,
                           cron_jobs=[CronJob(follow_ups, cron="*/15 * * * *", timeout=600),
                                      CronJob(sweeps, cron="* * * * *", timeout=55)], **common)
        # The low queue's upkeep runs less often: its jobs are few, and each timer costs every job a little.
        self.low = _Slots(services.low_queue, concurrency=services.config.quotas.low_concurrency, dequeue_timeout=1,
                          **dict(common, timers={"sweep": max(q.sweep_s, 10), "abort": 5, "schedule": 5}))

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(announce(self.services)), asyncio.create_task(self.heartbeats.run()),
                      asyncio.create_task(home.publisher(self.services))]
        loop = asyncio.get_running_loop()
        signals = [signal.SIGINT, signal.SIGTERM]
        for signum in signals:
            loop.add_signal_handler(signum, lambda: asyncio.ensure_future(self.stop()))
        try:
            await asyncio.gather(self.main.start(), self.low.start(), return_exceptions=True)
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
            for task in self.tasks:
                task.cancel()

    async def stop(self) -> None:
        await asyncio.gather(self.main.stop(), self.low.stop())
        for task in self.tasks:
            task.cancel()


def make_worker(services: Services, *, concurrency: int | None = None, **kwargs) -> Workers:
    return Workers(services, concurrency=concurrency, **kwargs)


async def amain() -> None:
    try:
        cfg = config_mod.load()
    except config_mod.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    if not cfg.env.slack_bot_token:
        print("config error: SLACK_BOT_TOKEN: a standalone worker posts to Slack and needs it "
              "(the local console runs its own worker)", file=sys.stderr)
        raise SystemExit(2)
    url, server = resolve(cfg.env)
    require_store(url, cfg.queue.allow_eviction, server)
    chats: dict[str, Chat] = {"slack": slack.SlackChat(slack.web_client(cfg.env))}
    services = Services.build(cfg, url, chats)
    if cfg.env.worker_metrics_port:
        start_http_server(cfg.env.worker_metrics_port, registry=services.metrics.registry)
        log.info("worker metrics on port %s", cfg.env.worker_metrics_port)
    worker = make_worker(services)
    log.info("worker started on queue %s", services.queue.name)
    try:
        await worker.start()
    finally:
        await services.close()
        if server:
            server.stop()


def main() -> None:
    try:
        secrets = config_mod.load_env().secrets()
    except config_mod.ConfigError:
        secrets = []          # amain reports the config error itself
    setup_logging(secrets)
    asyncio.run(amain())


if __name__ == "__main__":
    main()
