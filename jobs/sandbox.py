"""Running a configured command (a repo's test command, a build) in a throwaway checkout.

The command comes from the operator's config, never from a user. It runs in its own process group (killed
whole on timeout), with an environment holding no secrets and a private HOME, and without network where this
machine allows it (`unshare -n`)."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from jobs.git import env_without_secrets

OUTPUT_MAX = 2_000_000  # bytes of output kept; beyond that the head is dropped


@dataclass
class CommandResult:
    returncode: int | None
    output: str
    timed_out: bool
    seconds: float
    isolated: bool      # ran without network

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


@functools.lru_cache(maxsize=1)
def can_unshare_net() -> bool:
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


async def run_command(command: str, cwd: Path, timeout_s: float, *, network: bool = False,
                      env: dict[str, str] | None = None) -> CommandResult:
    home = cwd.parent / (cwd.name + "-home")
    home.mkdir(exist_ok=True)
    full_env = env_without_secrets({"HOME": str(home), "CI": "true", **(env or {})})
    isolated = not network and can_unshare_net()
    argv = (["unshare", "-n"] if isolated else []) + ["/bin/sh", "-c", command]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*argv, cwd=str(cwd), env=full_env, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                start_new_session=True)
    chunks: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        while True:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                return
            chunks.append(chunk)
            size += len(chunk)
            while size > OUTPUT_MAX and len(chunks) > 1:
                size -= len(chunks.pop(0))

    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(read(), proc.wait()), timeout_s)
    except asyncio.TimeoutError:
        timed_out = True
    finally:
        _kill_group(proc.pid)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            pass
    output = b"".join(chunks).decode("utf-8", "replace")
    if timed_out:
        output += f"\n[timed out after {timeout_s:g}s; the process group was killed]"
    return CommandResult(None if timed_out else proc.returncode, output, timed_out,
                         time.monotonic() - started, isolated)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
