"""`/backport <release>[,<release>...] <ref> [<ref>...]`: one backport job per release, newest release first.

A ref is a commit SHA (7-40 hex) or a merged PR (PR#1234, #1234, owner/repo#1234, its URL). Whether the
release, the commits and the PR exist is the job's first stage; here we only check the shape."""

from __future__ import annotations

from commands.base import (
    Command,
    Invocation,
    PRRef,
    Usage,
    parse_commit_or_pr,
    parse_releases,
    shown,
)
from core.queue import JobRequest
from jobs import backport
from jobs.backport import BackportParams

MAX_REFS = 20


def release_order(name: str) -> tuple:
    """Newest first: 9.1 before 9.0 before 8.1; names that are not versions after those."""
    parts = name.split(".")
    if all(p.isascii() and p.isdecimal() for p in parts):
        return (0, [-int(p) for p in parts])
    return (1, name)


async def run(inv: Invocation, args: list[str]) -> list[JobRequest]:
    if len(args) < 2:
        raise Usage("give a release and at least one commit or PR")
    releases = sorted(parse_releases(args[0]), key=release_order)
    refs = [parse_commit_or_pr(inv.config, a) for a in args[1:]]
    if len(refs) > MAX_REFS:
        raise Usage(f"at most {MAX_REFS} refs in one backport")
    repos = {r.repo for r in refs if isinstance(r, PRRef)} or {inv.config.default_repo.github}
    if len(repos) > 1:
        raise Usage("all PRs in one backport must come from the same repository")
    repo = repos.pop()
    ref_texts = [f"#{r.number}" if isinstance(r, PRRef) else r for r in refs]
    if len(set(ref_texts)) != len(ref_texts):
        raise Usage(f"{shown(' '.join(ref_texts))} names the same ref twice")
    shown_refs = " ".join(r if r.startswith("#") else r[:10] for r in ref_texts)
    return [
        JobRequest(kind=backport.KIND, params=BackportParams(repo=repo, release=release, refs=tuple(ref_texts)),
                   summary=f"backport {shown_refs} → {release} ({repo})", requester=inv.user,
                   channel=inv.channel, dest=inv.dest)
        for release in releases
    ]


COMMAND = Command(
    name="backport",
    usage="/backport <release>[,<release>...] <ref> [<ref>...]",
    summary="cherry-pick commits or a merged PR onto release branches, test, and open a backport PR",
    maintainers_only=True,
    run=run,
    kind=backport.KIND,
    examples=("/backport 9.1 abc1234", "/backport 9.1,8.1 PR#1234"),
)
