"""The sandbox's cost: one sandboxed no-op command (bwrap namespaces, cgroup, rlimits, the checkout bound,
cleanup) next to a bare `/bin/true` subprocess, both through asyncio as the jobs run them.
Usage: python bench/sandbox.py [--runs 100]"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core import sandbox  # noqa: E402


async def bare(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = await asyncio.create_subprocess_exec("/bin/true")
        await proc.wait()
        out.append(time.perf_counter() - t)
    return out


async def boxed(runs: int, work: Path) -> list[float]:
    out = []
    limits = sandbox.Limits(timeout_s=30)
    for _ in range(runs):
        t = time.perf_counter()
        result = await sandbox.run(["/bin/true"], work, limits)
        assert result.ok, result.output
        out.append(time.perf_counter() - t)
    return out


def show(name: str, xs: list[float]) -> None:
    xs = sorted(xs)
    print(f"{name:28s} p50 {statistics.median(xs) * 1000:7.2f} ms   p90 {xs[int(len(xs) * 0.9)] * 1000:7.2f} ms")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    if not sandbox.available():
        print(f"skipped: no sandbox on this machine ({sandbox.probe()})")
        return
    print(f"isolation: {sandbox.describe(sandbox.Limits(timeout_s=30))}")
    with tempfile.TemporaryDirectory() as tmp:
        await bare(10)
        await boxed(5, Path(tmp))
        b = await bare(args.runs)
        s = await boxed(args.runs, Path(tmp))
    show("bare /bin/true", b)
    show("sandboxed /bin/true", s)
    print(f"overhead per sandboxed command: {(statistics.median(s) - statistics.median(b)) * 1000:.1f} ms (p50)")


if __name__ == "__main__":
    asyncio.run(main())
