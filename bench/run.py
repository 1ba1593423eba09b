"""Run every benchmark in bench/ and print their figures. Usage: ./run bench [name ...]"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["backport", "backport_sweep", "summarize", "provenance", "sandbox", "adversarial", "flood", "ack", "jobqueue", "scaling", "memory",
           "provenance_eval"]      # the last needs local clones of redis and valkey; it says so and skips without


def main() -> int:
    wanted = set(sys.argv[1:])
    failed = 0
    for name in BENCHES:
        script = HERE / f"{name}.py"
        if wanted and name not in wanted:
            continue
        print(f"== {script.stem} ==", flush=True)
        failed += subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
