"""Slash-command ack latency through the real HTTP endpoint (signature check, authorisation, enqueue into
Valkey): p50/p99 at 50 concurrent requests, next to a bare slack-bolt app that only acks, in the same run.

Each app runs in its own process (ours as `python -m bot` in HTTP mode, the baseline as bench/bare_app.py); the
fake Slack they post to runs in this one. Several rounds per app, each led by another app; the worker starts
after them and must post a parent message for every job acknowledged. A second baseline runs the bare app's
listener inline (process_before_response=True, as ours does), which saves Bolt's 10 ms ack polling.

Usage: python bench/ack.py [--requests 1000] [--concurrency 50] [--rounds 3]"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from common import ROOT, pct

import redis as syncredis  # noqa: E402
from aiohttp import ClientSession  # noqa: E402

from core.store import EmbeddedValkey, free_port  # noqa: E402
from tests.conftest import MAINTAINER, SIGNING_SECRET, sign_slack  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402


def start(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))


async def wait_up(port: int) -> None:
    for _ in range(400):
        try:
            async with ClientSession() as s:
                async with s.post(f"http://127.0.0.1:{port}/slack/events", data="x") as r:
                    if r.status in (200, 401):
                        return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


async def load(port: int, n: int, concurrency: int, respond: str, offset: int) -> list[float]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(session, i):
        body = urllib.parse.urlencode({"command": "/backport", "text": f"1.0 {offset + i:012x}", "user_id": MAINTAINER,
                                       "channel_id": "CBENCH001", "team_id": "T1", "response_url": respond,
                                       "trigger_id": "1", "user_name": "m", "api_app_id": "A1", "token": "t"})
        async with sem:
            t = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/slack/events", data=body,
                                    headers=sign_slack(body)) as r:
                text = await r.text()
                assert r.status == 200, (r.status, text)
            latencies.append(time.perf_counter() - t)

    async with ClientSession() as session:
        await asyncio.gather(*(one(session, i) for i in range(n)))
    return latencies


async def main(n: int, concurrency: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = EmbeddedValkey(tmp / "valkey", appendonly=False)
        url = server.start()
        slack = await FakeSlack().start()
        respond = f"{slack.url}/respond/1"
        (tmp / "bot.toml").write_text('[[repos]]\ngithub = "acme/widget"\nclone_url = "/nonexistent"\n'
                                      f'[slack]\nmaintainers = ["{MAINTAINER}"]\n')
        env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test-token-0000", "SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "SLACK_API_URL": slack.api_url, "REDIS_URL": url, "BOT_DATA_DIR": str(tmp), "PYTHONPATH": str(ROOT),
               "BOT_CONFIG": str(tmp / "bot.toml")}
        log = tmp / "bot.log"
        ours_port, bare_port, inline_port = free_port(), free_port(), free_port()
        bare_app = [sys.executable, str(ROOT / "bench" / "bare_app.py")]
        procs = [start([sys.executable, "-m", "bot"], {**env, "PORT": str(ours_port)}, log),
                 start([*bare_app, str(bare_port)], env, tmp / "bare.log"),
                 start([*bare_app, str(inline_port), "inline"], env, tmp / "inline.log")]
        try:
            for port in (ours_port, bare_port, inline_port):
                await wait_up(port)
                await load(port, 100, 10, respond, 0)           # warm up
            b, o, i = [], [], []
            # Several rounds, each led by another app. The worker (which posts each job's
            # parent message) starts afterwards: the web process is measured alone, as the bare apps are, and
            # the worker may live on another machine.
            apps = [(bare_port, b), (ours_port, o), (inline_port, i)]
            order = [apps[(r + k) % 3] for r in range(rounds) for k in range(3)]     # each app leads a round
            for r, (port, out) in enumerate(order):
                out += await load(port, n, concurrency, respond, 10_000 + r * n)
            procs.append(start([sys.executable, "-m", "jobs.worker"], env, tmp / "worker.log"))
            expected = 100 + rounds * n    # ours: warm-up and every round
            for _ in range(600):                                  # every acknowledged job gets its parent
                if len(slack.parents()) >= expected:
                    break
                await asyncio.sleep(0.1)
            queued = sum(1 for k in syncredis.Redis.from_url(url).scan_iter("bot:job:bp-*") if b":" not in k[8:])
            errors = [line for line in log.read_text().splitlines() if "ERROR" in line or "could not" in line]
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
            await slack.stop()
            server.stop()
    print(f"ack latency: {rounds} rounds of {n} slash commands per app, {concurrency} concurrent, each app in its own "
          "process")
    print(f"  bare slack-bolt (ack only)                   p50 {pct(b, 50) * 1000:6.1f} ms   p99 {pct(b, 99) * 1000:6.1f} ms")
    print(f"  bare slack-bolt, listener inline             p50 {pct(i, 50) * 1000:6.1f} ms   p99 {pct(i, 99) * 1000:6.1f} ms"
          "   (process_before_response=True, as ours)")
    print(f"  maintainer-bot (verify, authorise, enqueue)  p50 {pct(o, 50) * 1000:6.1f} ms   p99 {pct(o, 99) * 1000:6.1f} ms")
    print(f"  p99 ratio {pct(o, 99) / pct(b, 99):.2f}x of the bare app, {pct(o, 99) / pct(i, 99):.2f}x of the inline one "
          f"(goal ≤ 1.5x; Slack allows 3000 ms); {queued} jobs recorded "
          f"(incl. 100 warm-up) of {expected} acknowledged; {len(slack.parents())} parent messages posted by the worker "
          f"started afterwards; "
          f"{len(errors)} error line(s) in the web process's log")
    for line in errors[:5]:
        print("   ", line[:200])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    asyncio.run(main(a.requests, a.concurrency, a.rounds))
