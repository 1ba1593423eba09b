"""The adversarial harness's pace on the planted target (tests/targets/kvserver.py with its three bugs): each
attempt is a fresh sandboxed target (bwrap, cgroup, copy-on-write checkout) started, attacked and judged.
Prints attempts per second and, for each planted bug, the attempt and seconds at which the built-in generator
first finds it. Usage: python bench/adversarial.py [--attempts 400]"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from common import ROOT

from core import sandbox  # noqa: E402
from jobs import adversarial, attack  # noqa: E402

SERVER = ROOT / "tests" / "targets" / "kvserver.py"


def main(budget: int) -> None:
    if not sandbox.available():
        print(f"skipped: no sandbox on this machine ({sandbox.probe()})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "checkout"
        work.mkdir()
        shutil.copy(SERVER, work / "kvserver.py")
        spec = {"cwd": str(work), "start": "python3 kvserver.py --port {port}", "protocol": "resp",
                "ready": ["PING"], "invariants": [["DEBUG DIGEST", "DEBUG RELOAD", "DEBUG DIGEST"]],
                "attempt_timeout_s": 1, "env": {},
                "limits": dataclasses.asdict(sandbox.Limits(timeout_s=40, cpu_s=10))}
        table = ["PING", "SET", "GET", "DEL", "APPEND", "SETRANGE", "WAIT"]
        scripts = adversarial.sweep(table)[:budget]
        first: dict[str, tuple[int, float]] = {}
        started = time.perf_counter()
        for i, script in enumerate(scripts, 1):
            result = attack.run_script(spec, script, logdir=tmp)
            if result["oracle"] and result["oracle"] not in first:
                first[result["oracle"]] = (i, time.perf_counter() - started)
            if len(first) == 3:
                break
        elapsed = time.perf_counter() - started
    print(f"adversarial: {i} attempts in {elapsed:.1f} s = {i / elapsed:.1f} attempts/s "
          f"(each a fresh sandboxed target; hangs wait out the 1 s attempt timeout)")
    for oracle, (n, t) in sorted(first.items(), key=lambda kv: kv[1][0]):
        print(f"  first {oracle:<10} at attempt {n:>4}, {t:5.1f} s")
    missing = {"signal", "hang", "invariant"} - set(first)
    print(f"  planted bugs found: {3 - len(missing)}/3" + (f" (missing: {', '.join(sorted(missing))})" if missing
                                                              else ""))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--attempts", type=int, default=400)
    main(ap.parse_args().attempts)
