"""Backport sweep benchmark: 50 merged PRs labelled for a release, waiting, in a repository of 3,000 commits;
one sweep backports them all, in the per-PR mode (50 backport jobs and PRs) and in the rolling mode (one PR
rebuilt from the branch tip). The whole bot runs in this process (web app, queue, worker with its default two
job slots) against the fake Slack and GitHub; no test command, no model. Prints the wall time from the command
to the summary and the GitHub calls made, REST and GraphQL. Usage: python bench/backport_sweep.py
[--commits 3000] [--prs 50]"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
from pathlib import Path

from common import ROOT  # noqa: F401  (puts the project on sys.path)

import pygit2  # noqa: E402

from core import config as config_mod  # noqa: E402
from core.store import EmbeddedValkey  # noqa: E402
from tests.conftest import Bot, config_dict, env_for  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.gitrepo import RepoBuilder  # noqa: E402

FILES = 100
LINES = 100


def build(remote: RepoBuilder, github: FakeGitHub, commits: int, prs: int) -> None:
    """`commits` commits on main; the release branch forks at two thirds; `prs` of the later ones are merged
    PRs (squash commits) labelled `backport 1.0`, each on a file of its own so that every pick is clean."""
    repo = remote.repo
    sig = pygit2.Signature("Bench", "bench@example.com", 1_700_000_000, 0)
    contents = {f"src/mod{f:03d}.c": [f"/* mod{f} line {i} */" for i in range(LINES)] for f in range(FILES)}
    contents.update({f"src/pr{k:03d}.c": [f"/* pr{k} line {i} */" for i in range(LINES)] for k in range(prs)})
    index = pygit2.Index()
    for name, lines in contents.items():
        index.add(pygit2.IndexEntry(name, repo.create_blob("\n".join(lines) + "\n"), pygit2.enums.FileMode.BLOB))
    parent = repo.create_commit("refs/heads/main", sig, sig, "Initial", index.write_tree(repo), [])
    fork = commits * 2 // 3
    every = max(1, (commits - fork - 1) // prs)
    k = 0
    for n in range(1, commits):
        if n > fork and (n - fork) % every == 0 and k < prs:
            name, line, message = f"src/pr{k:03d}.c", 7, f"Fix {k} (#{1000 + k})"
        else:
            name, line, message = f"src/mod{n % FILES:03d}.c", (n * 7) % LINES, f"Change {n}"
        contents[name][line] = f"/* {name} line {line} changed by commit {n} */"
        index.add(pygit2.IndexEntry(name, repo.create_blob("\n".join(contents[name]) + "\n"),
                                    pygit2.enums.FileMode.BLOB))
        parent = repo.create_commit("refs/heads/main", sig, sig, message, index.write_tree(repo), [parent])
        if name.startswith("src/pr"):
            github.add_pull("acme/widget", 1000 + k, title=f"Fix {k}", merge_commit_sha=str(parent),
                            labels=("backport 1.0",), merged_at=f"2026-10-01T00:{k // 60:02d}:{k % 60:02d}Z")
            k += 1
        if n == fork:
            repo.references.create("refs/heads/release/1.0", parent, force=True)


async def one(mode: str, commits: int, prs: int) -> tuple[float, collections.Counter, str]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        remote = RepoBuilder(tmp / "remote.git")
        server = EmbeddedValkey(tmp / "valkey", appendonly=False)
        url = server.start()
        slack, github = await FakeSlack().start(), await FakeGitHub().start()
        build(remote, github, commits, prs)
        data = config_dict(remote)
        data["backport"] = {"mode": mode, "sweep_max": prs}
        data["queue"]["job_timeout_s"] = 3600
        env = config_mod.load_env(env_for(tmp, slack, github, None, url))
        bot = await Bot(config_mod.parse(data, env=env), url, slack).start()
        try:
            await asyncio.sleep(0.5)
            github.calls.clear()
            started = time.monotonic()
            _, body = await bot.slash("/backport", "sweep 1.0")
            key = body["text"].split("`")[1]
            info = await bot.final(key, timeout=1800)
            wall = time.monotonic() - started
            calls = collections.Counter(name for name, _ in github.calls)
            summary = next(line for line in bot.thread_of(info).splitlines() if line.startswith("• *"))
        finally:
            await bot.stop()
            await slack.stop()
            await github.stop()
            server.stop()
    return wall, calls, summary


async def main(commits: int, prs: int) -> None:
    print(f"backport sweep: {prs} waiting PRs in a repo of {commits} commits, one sweep")
    for mode in ("per-pr", "rolling"):
        wall, calls, summary = await one(mode, commits, prs)
        graphql = calls.pop("graphql", 0)
        rest = sum(calls.values())
        top = ", ".join(f"{name} {n}" for name, n in calls.most_common(6))
        print(f"  {mode:<8} {wall:6.1f} s wall, {rest + graphql} GitHub calls ({graphql} GraphQL, {rest} REST: {top})")
        print(f"           {summary[:150]}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=3000)
    ap.add_argument("--prs", type=int, default=50)
    args = ap.parse_args()
    asyncio.run(main(args.commits, args.prs))
