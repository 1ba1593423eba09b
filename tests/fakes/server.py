"""A small aiohttp server on a free loopback port, started and stopped inside a test's event loop."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web


class FakeServer:
    def __init__(self):
        self.app = web.Application(client_max_size=50 * 1024 * 1024)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.calls: list[tuple[str, dict]] = []   # (name, payload), in order
        self.failures: dict[str, list[tuple[int, dict, str]]] = {}  # name -> [(status, headers, body)]
        self.hangs: dict[str, float] = {}     # name -> seconds to sit on a request before answering
        # name -> seconds to sit on the answer after the call took effect (a response lost to a dying client)
        self.lingers: dict[str, float] = {}
        self.linger_when = None               # or (name, payload) -> seconds, for one kind of call only

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "FakeServer":
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    def fail(self, name: str, status: int = 500, times: int = 1, headers: dict | None = None,
             body: str = '{"ok": false, "error": "internal_error"}') -> None:
        """The next `times` calls of `name` answer `status` instead of working."""
        self.failures.setdefault(name, []).extend([(status, headers or {}, body)] * times)

    async def maybe_hang(self, name: str) -> None:
        if self.hangs.get(name):
            await asyncio.sleep(self.hangs[name])

    async def maybe_linger(self, name: str, payload: dict | None = None) -> None:
        seconds = self.lingers.get(name) or (self.linger_when(name, payload or {}) if self.linger_when else 0)
        if seconds:
            await asyncio.sleep(seconds)

    def take_failure(self, name: str) -> web.Response | None:
        queue = self.failures.get(name)
        if queue:
            status, headers, body = queue.pop(0)
            return web.Response(status=status, headers=headers, text=body, content_type="application/json")
        return None

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)

    def payloads(self, name: str) -> list[dict]:
        return [p for n, p in self.calls if n == name]

    async def wait_for(self, predicate, timeout: float = 20.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")
