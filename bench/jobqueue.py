"""Queue benchmark: no-op jobs per second through our enqueue → worker → done path, and pickup latency, next to
bare SAQ on the same Valkey server in the same run. Usage: python bench/jobqueue.py [--jobs 2000] [--concurrency 10]"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from pathlib import Path

from common import pct

from saq import Queue, Worker  # noqa: E402

from bot import config as config_mod  # noqa: E402
from bot.console import ConsoleChat  # noqa: E402
from bot.services import Services  # noqa: E402
from bot.store import EmbeddedValkey  # noqa: E402
from jobs.queue import JobRequest, submit  # noqa: E402
from jobs.worker import make_worker  # noqa: E402


async def drain(queue, keys: list[str], timeout: float = 300) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = await queue.jobs(keys)
        if all(j is not None and j.status in ("complete", "aborted", "failed") for j in jobs):
            return jobs
        await asyncio.sleep(0.05)
    raise RuntimeError("jobs did not finish")


async def concurrently(calls, width: int = 1) -> None:
    """Submit `width` at a time (one: the path alone, no queueing behind a flood)."""
    sem = asyncio.Semaphore(width)

    async def one(call):
        async with sem:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def noop(ctx):
    return None


async def bare(url: str, n: int, concurrency: int) -> tuple[float, list[float]]:
    queue = Queue.from_url(url, name="bare")
    worker = Worker(queue, functions=[noop], concurrency=concurrency)
    task = asyncio.create_task(worker.start())
    started = time.perf_counter()
    keys = [f"bare-{i}" for i in range(n)]
    await concurrently([lambda k=k: queue.enqueue("noop", key=k) for k in keys])
    jobs = await drain(queue, keys)
    elapsed = time.perf_counter() - started
    await worker.stop()
    task.cancel()
    await queue.disconnect()
    global B_SWEPT
    B_SWEPT = sum(1 for j in jobs if j.status != "complete")
    return elapsed, [(j.started - j.queued) / 1000 for j in jobs if j.started]


B_SWEPT = 0


async def ours(url: str, n: int, concurrency: int, tmp: Path) -> tuple[float, list[float]]:
    cfg = config_mod.parse({"repos": [{"github": "acme/widget", "clone_url": "/nonexistent"}],
                            "queue": {"concurrency": concurrency}},
                           env=config_mod.load_env({"REDIS_URL": url, "BOT_DATA_DIR": str(tmp)}))
    services = Services.build(cfg, url, {"console": ConsoleChat(io.StringIO())}, queue_name="ours")
    worker = make_worker(services)
    task = asyncio.create_task(worker.start())
    started = time.perf_counter()
    reqs = [JobRequest(kind="noop", params={"i": i, "quiet": True}, summary="noop", channel="console", dest="console")
            for i in range(n)]
    await concurrently([lambda r=r: submit(services.queue, services.redis, r) for r in reqs])
    keys = [r.key for r in reqs]
    jobs = await drain(services.queue, keys)
    elapsed = time.perf_counter() - started
    await worker.stop()
    task.cancel()
    await services.close()
    return elapsed, [(j.started - j.queued) / 1000 for j in jobs]


async def main(n: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedValkey(Path(tmp) / "valkey", appendonly=False)
        url = server.start()
        try:
            b_s, b_pick = await bare(url, n, concurrency)
            o_s, o_pick = await ours(url, n, concurrency, Path(tmp))
        finally:
            server.stop()
    print(f"queue: {n} no-op jobs submitted one at a time, worker concurrency {concurrency}, one process, one Valkey")
    print(f"  bare SAQ            {n / b_s:8.0f} jobs/s   pickup p50 {pct(b_pick, 50) * 1000:6.1f} ms  "
          f"p99 {pct(b_pick, 99) * 1000:6.1f} ms")
    print(f"  maintainer-bot      {n / o_s:8.0f} jobs/s   pickup p50 {pct(o_pick, 50) * 1000:6.1f} ms  "
          f"p99 {pct(o_pick, 99) * 1000:6.1f} ms   (keyed submit, job record, heartbeat; a quiet job: no parent message)")
    print(f"  throughput ratio {b_s / o_s:.2f}x of bare SAQ (goal ≥ 0.9x); pickup goal p99 < 20 ms")
    if B_SWEPT:
        print(f"  note: bare SAQ's own sweep aborted {B_SWEPT} job(s) it had just dequeued (the race BotQueue fixes)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=10)
    a = ap.parse_args()
    asyncio.run(main(a.jobs, a.concurrency))
