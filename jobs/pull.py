"""A pull request brought into the repo's mirror: its GitHub metadata, its head commit and its base tip.
Shared by the jobs that examine a PR's code (provenance, adversarial)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pygit2

from core.github import GitHubError
from core.kinds import BadParams, Params
from jobs import git
from jobs.runtime import JobFailed


@dataclass(frozen=True)
class Target(Params):
    """What a PR-examining job looks at: a PR (`pr`, with its `head` SHA when a webhook saw it) or a local range
    `base..head` of the repository."""

    repo: str
    pr: int = 0
    base: str = ""
    head: str = ""

    def check(self) -> None:
        if self.pr < 0 or (not self.pr and not (self.base and self.head)):
            raise BadParams(f"{type(self).__name__}: name a PR or a range base..head")
        if self.pr and self.base:
            raise BadParams(f"{type(self).__name__}: a PR or a range, not both")

    @property
    def label(self) -> str:
        return f"#{self.pr}" if self.pr else f"{self.base}..{self.head}"


@dataclass
class Pull:
    pr: dict
    repo: pygit2.Repository
    head: pygit2.Commit
    base: pygit2.Commit | None
    head_sha: str
    base_ref: str


async def fetch_range(job, repo_name: str, base: str, head: str) -> Pull:
    """A local range `base..head` in git's revision syntax, resolved in the freshly synced mirror: what a PR
    would be, without GitHub."""
    repo_cfg = job.config.repo(repo_name)
    mirror = git.Mirror(job.config.env.data_dir, repo_cfg.github, repo_cfg.clone_url, job.config.env.github_token)
    try:
        repo = await asyncio.to_thread(mirror.sync)
        head_c = git.resolve_revision(repo, head, repo_cfg.branch_for)
        base_c = git.resolve_revision(repo, base, repo_cfg.branch_for)
    except git.GitError as exc:
        raise JobFailed(str(exc))
    pr = {"title": f"{base}..{head}", "head": {"sha": str(head_c.id)}, "base": {"ref": base}}
    return Pull(pr, repo, head_c, base_c, str(head_c.id), base)


async def for_params(job, p: Target, purpose: str) -> Pull:
    """The PR (`pr`) or the local range (`base`, `head`) a job's parameters name."""
    if p.pr:
        return await fetch(job, p.repo, p.pr, purpose)
    return await fetch_range(job, p.repo, p.base, p.head)


async def fetch(job, repo_name: str, number: int, purpose: str) -> Pull:
    """GitHub metadata, then the PR's head fetched into the mirror (refs/pull/N/head)."""
    gh = job.services.github
    if gh is None:
        raise JobFailed(f"{purpose} needs GitHub credentials (GITHUB_TOKEN or a GitHub App)")
    repo_cfg = job.config.repo(repo_name)
    try:
        pr = await gh.pull(repo_name, number)
    except GitHubError as exc:
        if exc.status == 404:
            raise JobFailed(f"PR #{number} does not exist in {repo_name}")
        raise
    head_sha = (pr.get("head") or {}).get("sha", "")
    base_ref = (pr.get("base") or {}).get("ref", repo_cfg.default_branch)
    mirror = git.Mirror(job.config.env.data_dir, repo_cfg.github, repo_cfg.clone_url, job.config.env.github_token)
    try:
        await asyncio.to_thread(mirror.sync)
        repo = await asyncio.to_thread(mirror.fetch_pull, number)
        head = git.commit_at(repo, head_sha)
    except (git.GitError, KeyError, ValueError) as exc:
        raise JobFailed(f"cannot fetch #{number}: {exc}")
    return Pull(pr, repo, head, git.branch_tip(repo, base_ref), head_sha, base_ref)
