"""Workers as separate processes (`python -m jobs.worker`) sharing one queue: a worker killed with SIGKILL in
the middle of a job's test stage; another worker picks the job up and it finishes once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import tomli_w

from jobs.kinds import NOOP, NoopParams
from core.queue import job_info
from tests.bot.test_app import seed
from tests.conftest import config_dict, env_for
from tests.jobs.test_sandbox import alive_with

ROOT = Path(__file__).resolve().parents[2]


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GITHUB_", "ANTHROPIC_", "BOT_"))}
    full.update(env)
    full["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen([sys.executable, "-m", "jobs.worker"], env=full, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, cwd=ROOT)


async def test_killed_worker_job_is_recovered_and_completes_once(tmp_path, make_bot, remote, slack, github,
                                                                  redis_url):
    fix = seed(remote)
    marker = "sleep 3.0271"           # the test command runs in the sandbox: it is seen from here as a process
    data = config_dict(remote, test_command=marker, test_timeout_s=60)
    cfg_path = tmp_path / "bot.toml"
    cfg_path.write_text(tomli_w.dumps(data))
    env = env_for(tmp_path, slack, github, None, redis_url)
    env["BOT_CONFIG"] = str(cfg_path)
    bot = await make_bot(data, worker=False)   # the web side only; the workers are processes
    log = tmp_path / "workers.log"
    first = start_worker(env, log)
    try:
        _, body = await bot.slash("/backport", f"1.0 {fix}")
        key = body["text"].split("`")[1]
        for _ in range(400):
            info = await job_info(bot.services.redis, key)
            if info.get("detail") == "running tests" and alive_with(marker):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the job never reached its test stage: {log.read_text()[-3000:]}")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        for _ in range(100):             # the sandbox dies with its worker: nothing of it is left running
            if not alive_with(marker):
                break
            await asyncio.sleep(0.05)
        assert alive_with(marker) == []
        second = start_worker(env, log)
        try:
            info = await bot.final(key, timeout=90)
        finally:
            second.terminate()
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert info["status"] == "done", log.read_text()[-3000:]
    prs = [p for p in github.pulls["acme/widget"].values() if p["state"] == "open"]
    assert len(prs) == 1
    thread = [m["text"] for m in slack.thread(info["thread_ts"])]
    assert sum("Backport ready for review" in t for t in thread) == 1
    assert sum(t.startswith("Resolved:") for t in thread) == 1      # not repeated by the second attempt
    from core.audit import Audit

    kinds = [(e["stage"], e["kind"]) for e in await Audit(bot.services.redis, key).entries()]
    assert kinds.count(("test", "start")) == 2          # the test stage ran again, the rest resumed
    assert ("job", "retry") in kinds and ("fetch", "resumed") in kinds and ("pick", "resumed") in kinds


async def test_a_heartbeat_never_writes_a_finished_job_back_as_active(redis_url):
    """SAQ's update reads the status, then writes the job: a touch in flight when the job ends must finish
    before the job's end is written, or the job would stay 'active' forever."""
    import redis.asyncio as aioredis

    from saq import Status

    from core.queue import BotJob, JobRequest, make_queue, submit
    from jobs.worker import Heartbeats

    queue, redis = make_queue(redis_url, name="hb"), aioredis.from_url(redis_url)
    started, release = asyncio.Event(), asyncio.Event()

    class SlowTouch(BotJob):
        """A touch that stops half-way, after SAQ has read the status."""

        async def update(self, **kwargs):
            started.set()
            await release.wait()
            await super().update(**kwargs)

    try:
        sub = await submit(queue, redis, JobRequest(kind=NOOP, params=NoopParams(quiet=True), summary="noop"))
        dequeued = await queue.dequeue()
        dequeued.attempts, dequeued.worker_id = 1, "w1"
        await dequeued.update(status=Status.ACTIVE)          # as a worker marks the job it took
        job = SlowTouch(**{f: getattr(dequeued, f) for f in ("function", "kwargs", "key", "queue", "status",
                                                            "timeout", "heartbeat", "retries", "ttl",
                                                            "attempts", "worker_id")})
        beats = Heartbeats(0.6)
        beats.add(job)
        loop = asyncio.create_task(beats.run())
        await asyncio.wait_for(started.wait(), 5)          # a touch is in flight
        removing = asyncio.create_task(beats.remove(job))
        await asyncio.sleep(0.3)
        assert not removing.done()                          # the job's end waits for it
        release.set()
        await asyncio.wait_for(removing, 5)
        await queue.finish(job, "complete")
        await asyncio.sleep(0.5)                            # the loop goes round again: the job is not touched
        loop.cancel()
        assert (await queue.job(sub.key)).status == "complete"
        assert job not in beats.jobs
    finally:
        await queue.disconnect()
        await redis.aclose()


async def test_a_job_swept_from_a_live_worker_is_not_run_twice_at_once(make_bot, remote, github, slack):
    """The sweep hands a job whose heartbeat went quiet to another worker. The first worker, still alive,
    notices at its next beat, stops its run and writes nothing back: one PR, one final reply."""
    from core.audit import Audit
    from jobs.worker import make_worker

    fix = seed(remote)
    data = config_dict(remote, test_command="sleep 4.0313", test_timeout_s=60)
    data["queue"]["heartbeat_s"] = 1
    bot = await make_bot(data)
    second = make_worker(bot.services)
    second_task = asyncio.create_task(second.start())
    try:
        _, body = await bot.slash("/backport", f"1.0 {fix}")
        key = body["text"].split("`")[1]
        for _ in range(400):
            if (await job_info(bot.services.redis, key)).get("detail") == "running tests":
                break
            await asyncio.sleep(0.05)
        job = await bot.services.queue.job(key)
        await bot.services.queue.retry(job, error="worker lost (no heartbeat)")   # what the sweep does
        info = await bot.final(key, timeout=90)
    finally:
        await second.stop()
        second_task.cancel()
        await asyncio.gather(second_task, return_exceptions=True)
    assert info["status"] == "done", bot.thread_of(info)
    prs = [p for p in github.pulls["acme/widget"].values() if p["state"] == "open"]
    assert len(prs) == 1
    thread = [m["text"] for m in slack.thread(info["thread_ts"])]
    assert sum("Backport ready for review" in t for t in thread) == 1
    kinds = [(e["stage"], e["kind"]) for e in await Audit(bot.services.redis, key).entries()]
    assert ("job", "lost") in kinds
    assert (await bot.services.queue.job(key)).status.value == "complete"


async def test_a_worker_process_serves_its_own_metrics(tmp_path, make_bot, remote, slack, github, redis_url):
    """Job durations are measured where jobs run: a worker process shows them at WORKER_METRICS_PORT."""
    from aiohttp import ClientSession

    from core.store import free_port

    fix = seed(remote)
    data = config_dict(remote)
    (tmp_path / "bot.toml").write_text(tomli_w.dumps(data))
    port = free_port()
    env = {**env_for(tmp_path, slack, github, None, redis_url), "BOT_CONFIG": str(tmp_path / "bot.toml"),
           "WORKER_METRICS_PORT": str(port)}
    bot = await make_bot(data, worker=False)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        _, body = await bot.slash("/backport", f"1.0 {fix}")
        info = await bot.final(body["text"].split("`")[1], timeout=60)
        assert info["status"] == "done", log.read_text()[-2000:]
        async with ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
    finally:
        worker.terminate()
        worker.wait(10)
    assert 'bot_job_seconds_count{kind="backport",outcome="done"} 1.0' in text
    assert 'bot_jobs_started_total{kind="backport"} 1.0' in text
