"""The flood scenario: one outsider (not a maintainer) sends 300 /summarize commands as fast as they can
while a maintainer sends one /backport; the whole bot runs in this process (web app through its HTTP port,
queue, worker) against fake Slack and GitHub, and the outsider's summaries hang on GitHub for 3 s each.
Prints how many of the outsider's commands were queued or refused, and how long after the maintainer's
command its job started and finished (goal: started within 1 s). Usage: python bench/flood.py [--flood 300]"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import ROOT  # noqa: F401  (puts the project on sys.path)

from core import config as config_mod  # noqa: E402
from core.store import EmbeddedValkey  # noqa: E402
from core.queue import job_info  # noqa: E402
from tests.conftest import Bot, config_dict, env_for  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.gitrepo import RepoBuilder, numbered  # noqa: E402
from tests.jobs.test_summarize import small_pr  # noqa: E402

OUTSIDER = "UOUTSIDE1"


async def main(flood: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        remote = RepoBuilder(tmp / "remote.git")
        base = remote.commit("main", {"src/a.c": numbered(30)}, "Initial")
        remote.branch("release/1.0", base)
        fix = remote.commit("main", {"src/a.c": numbered(30).replace("line 5\n", "line five\n")}, "Fix five")
        server = EmbeddedValkey(tmp / "valkey", appendonly=False)
        url = server.start()
        slack, github = await FakeSlack().start(), await FakeGitHub().start()
        for n in range(1, flood + 1):
            small_pr(github, number=n, head=f"{n:040x}")
        github.hangs["get_pull_files"] = 3
        env = config_mod.load_env(env_for(tmp, slack, github, None, url))
        bot = await Bot(config_mod.parse(config_dict(remote), env=env), url, slack).start()
        try:
            await asyncio.sleep(0.5)
            asked_at = time.monotonic()
            outsider = [asyncio.create_task(bot.slash("/summarize", f"PR#{n}", user=OUTSIDER))
                        for n in range(1, flood + 1)]
            await asyncio.sleep(0.05)                       # the flood is under way
            t0 = time.monotonic()
            _, body = await bot.slash("/backport", f"1.0 {fix}")
            key = body["text"].split("`")[1]
            started = finished = None
            while time.monotonic() - t0 < 60:
                status = (await job_info(bot.services.redis, key)).get("status")
                if started is None and status not in (None, "queued"):
                    started = time.monotonic() - t0
                if status in ("done", "failed", "needs a maintainer"):
                    finished = time.monotonic() - t0
                    break
                await asyncio.sleep(0.01)
            answers = [(await t)[1]["text"] for t in outsider]
            flood_s = time.monotonic() - asked_at
        finally:
            await bot.stop()
            await slack.stop()
            await github.stop()
            server.stop()
    queued = sum(a.startswith("Queued job") for a in answers)
    refused = sum(a.startswith("Not queued:") for a in answers)
    print(f"flood: an outsider sent {flood} /summarize commands in {flood_s:.2f} s; {queued} queued, "
          f"{refused} refused over quota")
    print(f"  maintainer's /backport started {started:.2f} s and finished {finished:.2f} s after the command "
          f"(goal: started within 1 s) — {'met' if started is not None and started < 1 else 'NOT met'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--flood", type=int, default=300)
    asyncio.run(main(ap.parse_args().flood))
