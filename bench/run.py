"""Run every benchmark in bench/ and print their figures. Usage: ./run bench [name ...]"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    wanted = set(sys.argv[1:])
    failed = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name == "run.py" or (wanted and script.stem not in wanted):
            continue
        print(f"== {script.stem} ==", flush=True)
        failed += subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
