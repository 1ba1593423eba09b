"""Scaling benchmark: a burst of 40 backports on a real repository, run by 1 worker process and then by 2
(`python -m jobs.worker`, concurrency 1 each), against fake Slack and GitHub servers. Each backport picks its
commit in memory, runs a CPU-bound test command (about 0.3 s) in a throwaway checkout, pushes and opens a PR.
Usage: python bench/scaling.py [--backports 40]"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

import tomli_w  # noqa: E402

from core.store import EmbeddedValkey, connect  # noqa: E402
from core.queue import JobRequest, job_info, make_queue, submit  # noqa: E402
from jobs import backport  # noqa: E402
from jobs.backport import BackportParams  # noqa: E402
from tests.conftest import MAINTAINER  # noqa: E402
from tests.fakes.github import TOKEN as GITHUB_TOKEN  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402
from tests.fakes.slack import TOKEN as SLACK_TOKEN  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.gitrepo import RepoBuilder, numbered  # noqa: E402

TEST = "python3 -c \"sum(i * i for i in range(3_000_000))\""


async def burst(url: str, env: dict, release: str, fixes: list[str], workers: int, tmp: Path) -> float:
    redis = connect(url)
    queue = make_queue(url)
    procs = [subprocess.Popen([sys.executable, "-m", "jobs.worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=open(tmp / f"worker-{release}-{i}.log", "ab")) for i in range(workers)]
    try:
        await asyncio.sleep(2.5)                     # workers up and idle
        started = time.perf_counter()
        keys = []
        for sha in fixes:
            req = JobRequest(kind=backport.KIND, params=BackportParams(repo="acme/widget", release=release, refs=(sha,)),
                             summary=f"backport {sha[:10]}", requester=MAINTAINER, channel="CBENCH001")
            keys.append((await submit(queue, redis, req)).key)
        while True:
            statuses = [(await job_info(redis, k)).get("status") for k in keys]
            if all(s in ("done", "failed", "needs a maintainer") for s in statuses):
                break
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        bad = [s for s in statuses if s != "done"]
        if bad:
            raise RuntimeError(f"{len(bad)} backport(s) did not finish cleanly: {bad[:3]}")
        return elapsed
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
        await queue.disconnect()
        await redis.aclose()


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        remote = RepoBuilder(tmp / "remote.git")
        base = remote.commit("main", {"src/core.c": numbered(200)}, "Initial")
        remote.branch("release/1.0", base)
        remote.branch("release/2.0", base)
        fixes = [remote.commit("main", {f"src/fix{i}.c": numbered(50, f"fix{i}")}, f"Fix {i}") for i in range(n)]
        server = EmbeddedValkey(tmp / "valkey", appendonly=False)
        url = server.start()
        slack, github = await FakeSlack().start(), await FakeGitHub().start()
        cfg = {"repos": [{"github": "acme/widget", "default_branch": "main", "clone_url": remote.url,
                          "releases": {"1.0": "release/1.0", "2.0": "release/2.0"}, "test_command": TEST}],
               "slack": {"maintainers": [MAINTAINER]}, "queue": {"concurrency": 1}}
        (tmp / "bot.toml").write_text(tomli_w.dumps(cfg))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": url, "BOT_CONFIG": str(tmp / "bot.toml"),
               "BOT_DATA_DIR": str(tmp / "data"), "SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_API_URL": slack.api_url,
               "GITHUB_TOKEN": GITHUB_TOKEN, "GITHUB_API_URL": github.url}
        try:
            one = await burst(url, env, "1.0", fixes, 1, tmp)
            two = await burst(url, env, "2.0", fixes, 2, tmp)
            prs = sum(1 for p in github.pulls.get("acme/widget", {}).values() if p["head"]["ref"].startswith("backport/"))
        finally:
            await slack.stop()
            await github.stop()
            server.stop()
    print(f"scaling: a burst of {n} backports (pick, ~0.3 s CPU test command, push, PR), concurrency 1 per worker")
    print(f"  1 worker process    {one:6.1f} s   ({n / one:.2f} backports/s)")
    print(f"  2 worker processes  {two:6.1f} s   ({n / two:.2f} backports/s)")
    print(f"  speed-up {one / two:.2f}x (goal ≥ 1.7x on 2 cores); {prs} PRs opened")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--backports", type=int, default=40)
    asyncio.run(main(ap.parse_args().backports))
