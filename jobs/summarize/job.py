"""The summarize job: load → (cache) → digest → model → check → post, and its typed parameters."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pygit2

from core import llm as llm_mod
from core.github import GitHubError
from core.kinds import Kind
from jobs import digest as digest_mod
from jobs import git
from jobs.pull import Target
from jobs.runtime import JobFailed, JobRun
from jobs.summarize.model import ModelResult, Source, Summarizer
from jobs.summarize.report import coverage, coverage_list, headline_of, render_result, since_text


async def _codeowners(job: JobRun, src: Source) -> list[tuple[str, str]]:
    """The repo's CODEOWNERS (from the default branch for a PR, from the range's base for a range): the areas
    a maintainer already thinks in. Never the PR's own copy, which its author could rewrite."""
    cache = f"bot:codeowners:{job.params.repo}"
    if src.base_commit is None:
        cached = await job.redis.get(cache)
        if cached is not None:
            return [tuple(x) for x in json.loads(cached)]
    found: list[tuple[str, str]] = []
    for path in digest_mod.CODEOWNERS_PATHS:
        try:
            if src.base_commit is not None:
                text = git.file_at(src.repo, src.base_commit, path)
            elif job.services.github is not None:
                text = await job.services.github.file_text(job.params.repo, path)
            else:
                text = None
        except GitHubError:
            text = None
        if text:
            found = digest_mod.parse_codeowners(text)
            break
    if src.base_commit is None:
        await job.redis.set(cache, json.dumps(found), ex=3600)     # the default branch's, re-read hourly
    return found


def areas_of(config) -> dict[str, str]:
    """`[summarize] areas`: path prefix → area name, for repos whose layout says little."""
    return config.summarize.areas


def budget(config) -> int:
    """`[summarize] input_tokens`: the budget of one model call."""
    return config.summarize.input_tokens


async def run(job: JobRun) -> None:
    await job.thread.status("running", "reading the changes")
    src = await _load(job)
    cache_key = f"bot:summary:{job.params.repo}:{src.ident}:{src.head}"
    last_key = f"bot:summary:last:{job.params.repo}:{src.ident}"
    cached = await job.redis.get(cache_key)
    if cached:
        entry = json.loads(cached)
        await job.audit.write("summarize", "cache-hit", src.head)
        for i, text in enumerate(entry["messages"]):
            await job.say(text, once=f"sum:{i}")
        await job.say(f"_Cached: nothing was pushed since this summary of `{src.head[:10]}` was made._",
                      once="sum:cached")
        await job.done("", detail=entry["headline"])
        return

    messages: list[str] = []
    d = digest_mod.digest(src.changes, areas_of(job.config), await _codeowners(job, src))
    messages.extend(digest_mod.render(d))
    previous = await job.redis.get(last_key)
    if previous:
        last = json.loads(previous)
        if last["head"] != src.head:
            messages.append(since_text(last, src))
    await job.thread.status("running", "summarising")
    if job.services.llm is None:
        result = ModelResult()
        messages.append(f"No LLM summary was made: {llm_mod.SKIPPED}. The digest above comes from the diff alone.")
        headline = f"digest only: {len(d.files)} file(s), +{d.additions}/−{d.deletions}"
    else:
        result = await Summarizer(llm_mod.for_job(job, "summarize"), budget(job.config)).run(src, d)
        messages.extend(render_result(result))
        headline = headline_of(result, d)
    messages.append(coverage(src, d, result, job.services.llm is not None))
    messages.extend(coverage_list(d, result, job.services.llm is not None))
    for i, text in enumerate(messages):
        await job.say(text, once=f"sum:{i}")
    entry = {"messages": messages, "headline": headline}
    ttl = job.config.queue.audit_ttl_days * 86400
    await job.redis.set(cache_key, json.dumps(entry), ex=ttl)
    await job.redis.set(last_key, json.dumps({"head": src.head, "files": {c.path: c.fingerprint
                                                                          for c in src.changes}}), ex=ttl)
    await job.done("", detail=headline)


async def _load(job: JobRun) -> Source:
    p: SummarizeParams = job.params
    if p.pr:
        gh = job.services.github
        if gh is None:
            raise JobFailed("summarising a PR needs GitHub credentials (GITHUB_TOKEN); a local range base..head "
                            "works without them")
        try:
            pr = await gh.pull(p.repo, p.pr)
            files = await gh.pull_files(p.repo, p.pr)
            commits = await gh.pull_commits(p.repo, p.pr)
        except GitHubError as exc:
            if exc.status == 404:
                raise JobFailed(f"PR #{p.pr} does not exist in {p.repo}")
            raise
        return Source(ident=f"pr{p.pr}", label=f"#{p.pr}", head=(pr.get("head") or {}).get("sha", ""),
                      title=pr.get("title") or "", body=pr.get("body") or "",
                      commits=[(c.get("commit") or {}).get("message", "") for c in commits[:50]],
                      changes=digest_mod.from_github(files))
    repo_cfg = job.config.repo(p.repo)
    mirror = git.Mirror(job.config.env.data_dir, repo_cfg.github, repo_cfg.clone_url, job.config.env.github_token)
    try:
        repo = await asyncio.to_thread(mirror.sync)
        base = git.resolve_revision(repo, p.base, repo_cfg.branch_for)
        head = git.resolve_revision(repo, p.head, repo_cfg.branch_for)
    except git.GitError as exc:
        raise JobFailed(str(exc))
    changes = await asyncio.to_thread(digest_mod.from_range, repo, base, head)
    walker = repo.walk(head.id, pygit2.enums.SortMode.TOPOLOGICAL)
    walker.hide(base.id)
    commits = [c.message for _, c in zip(range(50), walker)]
    return Source(ident=f"range:{p.base}..{p.head}", label=p.label, head=str(head.id),
                  title=p.label, body="", commits=commits, changes=changes, repo=repo,
                  base_commit=base)



@dataclass(frozen=True)
class SummarizeParams(Target):
    """The PR or range to summarise."""


KIND = Kind("summarize", "sum", SummarizeParams, run, command="summarize",
            about="the key changes of a PR or range, with what was and was not read")
