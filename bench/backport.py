"""Backport engine benchmark: in-memory pygit2 picks against `git cherry-pick` in a worktree.

Builds a repository with thousands of commits (a release branch forked early), then cherry-picks the same
commits onto the release branch both ways in the same run, and prints the times and whether the resulting trees
agree. Usage: python bench/backport.py [--commits 3000] [--picks 50]"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jobs import git  # noqa: E402

FILES = 120
LINES = 300


def build(path: Path, commits: int) -> tuple[pygit2.Repository, str, list[str]]:
    repo = pygit2.init_repository(str(path), bare=False)
    sig = pygit2.Signature("Bench", "bench@example.com", 1_700_000_000, 0)
    contents = {f"src/mod{f:03d}.c": [f"/* mod{f} line {i} */" for i in range(LINES)] for f in range(FILES)}
    index = pygit2.Index()
    for path_, lines in contents.items():
        index.add(pygit2.IndexEntry(path_, repo.create_blob("\n".join(lines) + "\n"), pygit2.enums.FileMode.BLOB))
    parent = repo.create_commit("refs/heads/main", sig, sig, "Initial", index.write_tree(repo), [])
    release_at = commits // 3
    release = None
    shas = []
    for n in range(1, commits):
        f = n % FILES
        line = (n * 7) % LINES
        name = f"src/mod{f:03d}.c"
        contents[name][line] = f"/* mod{f} line {line} changed by commit {n} */"
        blob = repo.create_blob("\n".join(contents[name]) + "\n")
        index.add(pygit2.IndexEntry(name, blob, pygit2.enums.FileMode.BLOB))
        parent = repo.create_commit("refs/heads/main", sig, sig, f"Change {n}\n\nSigned-off-by: B <b@e>",
                                    index.write_tree(repo), [parent])
        shas.append(str(parent))
        if n == release_at:
            release = str(parent)
    repo.references.create("refs/heads/release", pygit2.Oid(hex=release), force=True)
    return repo, release, shas[release_at:]


def in_memory(repo, release: str, picks: list[str]) -> tuple[float, str | None, int]:
    started = time.perf_counter()
    head = repo[pygit2.Oid(hex=release)]
    conflicts = 0
    for sha in picks:
        original = repo[pygit2.Oid(hex=sha)]
        result = git.pick(repo, original, head)
        if result.conflicts:
            conflicts += 1
            return time.perf_counter() - started, None, conflicts
        head = repo[pygit2.Oid(hex=git.commit_tree(repo, result.tree, head, original))]
    return time.perf_counter() - started, str(head.tree.id), conflicts


def cli(path: Path, release: str, picks: list[str]) -> tuple[float, str | None]:
    wt = path.parent / "worktree"
    run = lambda *a, **k: subprocess.run(["git", *a], check=True, capture_output=True, text=True, **k)  # noqa: E731
    started = time.perf_counter()
    run("-C", str(path), "worktree", "add", "-q", "--detach", str(wt), release)
    env_args = ["-c", "user.name=Bench", "-c", "user.email=bench@example.com"]
    for sha in picks:
        done = subprocess.run(["git", *env_args, "-C", str(wt), "cherry-pick", "-x", sha], capture_output=True)
        if done.returncode:
            return time.perf_counter() - started, None
    elapsed = time.perf_counter() - started
    tree = run("-C", str(wt), "rev-parse", "HEAD^{tree}").stdout.strip()
    return elapsed, tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=3000)
    ap.add_argument("--picks", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "repo"
        t = time.perf_counter()
        repo, release, later = build(path, args.commits)
        build_s = time.perf_counter() - t
        # A line is changed again every 600 commits; picking within the first 600 after the fork keeps every
        # pick clean (the previous change to its line is on the release branch).
        window = later[:599]
        step = max(1, len(window) // args.picks)
        picks = window[::step][: args.picks]
        mem_s, mem_tree, conflicts = in_memory(repo, release, picks)
        cli_s, cli_tree = cli(path, release, picks)
        print(f"backport engine: repo of {args.commits} commits (built in {build_s:.1f}s), {len(picks)} picks "
              f"onto a release branch forked at commit {args.commits // 3}")
        print(f"  in-memory (pygit2)          {mem_s * 1000:9.1f} ms  ({mem_s / len(picks) * 1000:.2f} ms/pick)")
        print(f"  git cherry-pick (worktree)  {cli_s * 1000:9.1f} ms  ({cli_s / len(picks) * 1000:.2f} ms/pick)")
        agree = mem_tree is not None and mem_tree == cli_tree
        print(f"  speed-up {cli_s / mem_s:.1f}x; trees agree: {agree}; conflicts: {conflicts}")


if __name__ == "__main__":
    main()
