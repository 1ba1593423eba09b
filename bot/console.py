"""The local console: `python -m bot` with no Slack tokens. The same commands at a prompt (or from standard
input when it is not a terminal), an in-process worker, and threads printed as indented replies.

`ConsoleChat` is the Chat the console's jobs post through; everything else is the code Slack uses."""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
from typing import TextIO

import commands
from commands import jobctl
from commands.base import Invocation
from core import render
from core.auth import CONSOLE_USER
from core.config import Config
from core.queue import ALIVE
from core.services import Services
from jobs.worker import make_worker

MARKUP = [(re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>"), r"@\1"), (re.compile(r"<!subteam\^([A-Z0-9]+)>"), r"@\1"),
          (re.compile(r"<#([A-Z0-9]+)(?:\|[^>]*)?>"), r"#\1"), (re.compile(r"<(https?://[^|>]+)\|([^>]+)>"), r"\2 (\1)"),
          (re.compile(r"<(https?://[^>]+)>"), r"\1")]


def plain(text: str) -> str:
    for pattern, repl in MARKUP:
        text = pattern.sub(repl, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class ConsoleChat:
    """Prints messages: a parent as a line of its own, replies indented under it, edits marked as such."""

    def __init__(self, out: TextIO = sys.stdout):
        self.out = out
        self.counter = itertools.count(1)
        self.parents: dict[str, str] = {}

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def post(self, channel, text, blocks=None, thread_ts=None) -> str:
        ts = f"{next(self.counter)}.000100"
        body = plain(render.blocks_to_text(blocks, text))
        if thread_ts:
            tag = self.parents.get(thread_ts, thread_ts)
            lines = body.splitlines() or [""]
            self._print(f"  ↳ [{tag}] {lines[0]}")
            for line in lines[1:]:
                self._print(f"  │   {line}")
        else:
            m = re.search(r"job `([^`]+)`", text)
            self.parents[ts] = m.group(1) if m else ts
            self._print(f"● {body}")
        return ts

    async def update(self, channel, ts, text, blocks=None) -> None:
        self._print(f"● {plain(render.blocks_to_text(blocks, text))}")

    async def delete(self, channel, ts) -> None:
        self._print(f"● (message {self.parents.get(ts, ts)} removed)")

    async def ephemeral(self, channel, user, text) -> None:
        self._print(f"  (only you) {plain(text)}")

    async def permalink(self, channel, ts) -> str:
        return f"(thread of job {self.parents.get(ts, ts)} above)"

    async def dm(self, user, text, blocks=None) -> str:
        self._print(f"✉ to @{user}: {plain(render.blocks_to_text(blocks, text))}")
        return f"{next(self.counter)}.000100"

    async def group_members(self, group) -> list[str]:
        return []

    async def publish_home(self, user, view) -> None:
        return None                      # the console has no Home tab: /job and the threads show it all

    async def open_view(self, trigger_id, view) -> None:
        return None                      # no forms in the console: commands are typed whole

    async def find_user(self, name) -> str | None:
        return "U" + re.sub(r"[^A-Z0-9]", "", name.upper())[:20] if name else None


CONSOLE_ONLY = {
    "retry": ("/retry <job>", jobctl.retry),
    "dismiss": ("/dismiss <job>", jobctl.dismiss),
    "draft": ("/draft <job>", jobctl.draft),
}


async def handle_line(services: Services, chat: ConsoleChat, line: str) -> list[str]:
    """Run one typed line; returns the keys of jobs it started."""
    line = line.strip()
    if not line or line.startswith("#"):
        return []
    if not line.startswith("/"):
        await chat.ephemeral("console", CONSOLE_USER, "Commands start with a slash; try /help.")
        return []
    name, _, text = line[1:].partition(" ")
    name = name.lower()
    if name in CONSOLE_ONLY or name == "job":
        key = text.strip()
        if not re.fullmatch(r"[a-z]+-[0-9a-f]{10}", key):
            usage = CONSOLE_ONLY[name][0] if name in CONSOLE_ONLY else "/job <job>"
            await chat.ephemeral("console", CONSOLE_USER, f"Usage: {usage} (a job id like bp-1a2b3c4d5e)")
            return []
        if name == "job":
            await chat.ephemeral("console", CONSOLE_USER, await jobctl.describe(services, key))
            return []
        if name == "draft":
            answer, started = await jobctl.draft_job(services, key, CONSOLE_USER)
            await chat.ephemeral("console", CONSOLE_USER, answer)
            return [started] if started else []
        await chat.ephemeral("console", CONSOLE_USER, await CONSOLE_ONLY[name][1](services, key, CONSOLE_USER))
        return [key]
    inv = Invocation(command=name, text=text, user=CONSOLE_USER, channel="console", dest="console",
                     services=services)
    outcome = await commands.dispatch(inv)
    await chat.ephemeral("console", CONSOLE_USER, outcome.text)
    if outcome.later is not None:
        await chat.ephemeral("console", CONSOLE_USER, await commands.finish_later(outcome))
    if name == "help":
        await chat.ephemeral("console", CONSOLE_USER,
                             "Console only: /job <id> shows a job and its audit log; /retry <id>, /dismiss <id> and "
                             "/draft <id> (a backport's conflict as a draft PR) do what the buttons do in Slack.")
    await commands.start_threads(services, chat, outcome)
    return [s.key for s in outcome.created]


async def wait_for_jobs(services: Services, keys: list[str], timeout_s: float = 3600) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while keys and loop.time() < deadline:
        jobs = [j or k for j, k in zip(await services.queue.jobs(keys), await services.low_queue.jobs(keys))]
        keys = [k for k, j in zip(keys, jobs) if j is not None and j.status in ALIVE]
        if keys:
            await asyncio.sleep(0.1)


async def run(config: Config, url: str, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout,
              banner: str = "") -> None:

    chat = ConsoleChat(out)
    services = Services.build(config, url, {"console": chat}, queue_name="console")
    worker = make_worker(services)
    worker_task = asyncio.create_task(worker.start())
    interactive = stdin.isatty()
    chat._print(banner or "maintainer-bot console. Type /help for the commands; Ctrl-D quits.")
    started: list[str] = []
    loop = asyncio.get_running_loop()
    try:
        while True:
            if interactive:
                try:
                    line = await loop.run_in_executor(None, input, "> ")
                except EOFError:
                    break
            else:
                line = await loop.run_in_executor(None, stdin.readline)
                if not line:
                    break
                chat._print(f"> {line.rstrip()}")
            started += await handle_line(services, chat, line)
            if interactive:
                await asyncio.sleep(0.05)
        await wait_for_jobs(services, started)
    finally:
        await worker.stop()
        worker_task.cancel()
        await asyncio.gather(worker_task, return_exceptions=True)
        await services.close()
