"""Memory: resident size of the web process (`python -m bot`, HTTP mode) and of one idle worker
(`python -m jobs.worker`), each started for real against an own Valkey and a fake Slack."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, rss_mb

from aiohttp import ClientSession  # noqa: E402

from core.store import EmbeddedValkey, free_port  # noqa: E402
from tests.fakes.slack import TOKEN, FakeSlack  # noqa: E402


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = EmbeddedValkey(tmp / "valkey", appendonly=False)
        url = server.start()
        slack = await FakeSlack().start()
        (tmp / "bot.toml").write_text('[[repos]]\ngithub = "acme/widget"\n[slack]\nmaintainers = ["U0000001"]\n')
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": url, "BOT_CONFIG": str(tmp / "bot.toml"),
               "BOT_DATA_DIR": str(tmp), "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "s3cret-s3cret",
               "SLACK_API_URL": slack.api_url, "PORT": str(port)}
        web = subprocess.Popen([sys.executable, "-m", "bot"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
        worker = subprocess.Popen([sys.executable, "-m", "jobs.worker"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    async with ClientSession() as s:
                        async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                            if r.status == 200:
                                break
                except OSError:
                    pass
                await asyncio.sleep(0.05)
            await asyncio.sleep(3)
            web_mb, worker_mb = rss_mb(web.pid), rss_mb(worker.pid)
        finally:
            web.terminate()
            worker.terminate()
            web.wait(10)
            worker.wait(10)
            await slack.stop()
            server.stop()
    print(f"memory: web process (python -m bot) {web_mb:.0f} MB resident; idle worker (python -m jobs.worker) "
          f"{worker_mb:.0f} MB resident")


if __name__ == "__main__":
    asyncio.run(main())
