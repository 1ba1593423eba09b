"""The summarize job: load → (cache) → digest → model → check → post, and its typed parameters."""

from __future__ import annotations

import asyncio
import dataclasses
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
    """Stages: read (the change, or the cached summary of this head) → model (one checkpointed answer) → post.
    A job resumed after a crash makes no model call and no post that a finished stage already made."""
    src = await _load(job)      # every attempt reads the change again: no model call, nothing posted
    state = await job.stage("read", lambda: _read(job, src), detail="reading the changes")
    if state["head"] != src.head:       # pushed between attempts: what was read (and asked) is stale
        await job.forget_stages("read", "model", "post")
        state = await job.stage("read", lambda: _read(job, src), detail="reading the changes")
    if state.get("cached"):
        messages = state["cached"]["messages"] + [
            f"_Cached: nothing was pushed since this summary of `{src.head[:10]}` was made._"]
        headline = state["cached"]["headline"]
    else:
        d = digest_mod.digest(src.changes, areas_of(job.config), await _codeowners(job, src))
        had_model = job.services.llm is not None
        result = ModelResult(**await job.stage("model", lambda: _model(job, src, d), detail="summarising"))
        messages = digest_mod.render(d)
        if state.get("since"):
            messages.append(since_text(state["since"], src))
        if not had_model:
            messages.append(f"No LLM summary was made: {llm_mod.SKIPPED}. The digest above comes from the diff alone.")
            headline = f"digest only: {len(d.files)} file(s), +{d.additions}/−{d.deletions}"
        else:
            messages.extend(render_result(result))
            headline = headline_of(result, d)
        messages.append(coverage(src, d, result, had_model))
        messages.extend(coverage_list(d, result, had_model))
    await job.stage("post", lambda: _post(job, src, messages, headline, cached=bool(state.get("cached"))),
                    detail="posting")
    await job.done("", detail=headline)


def _keys(job: JobRun, src: Source) -> tuple[str, str]:
    return (f"bot:summary:{job.params.repo}:{src.ident}:{src.head}", f"bot:summary:last:{job.params.repo}:{src.ident}")


async def _read(job: JobRun, src: Source) -> dict:
    """The head read, the cached summary of exactly this head if there is one, and the last summary's files (to
    say what changed since)."""
    cache_key, last_key = _keys(job, src)
    cached = await job.redis.get(cache_key)
    if cached:
        await job.audit.write("summarize", "cache-hit", src.head)
        return {"head": src.head, "cached": json.loads(cached)}
    previous = await job.redis.get(last_key)
    last = json.loads(previous) if previous else None
    return {"head": src.head, "since": last if last and last["head"] != src.head else None}


async def _model(job: JobRun, src: Source, d) -> dict:
    """The model's checked answer, as JSON (the stage's checkpoint); an empty result without a model."""
    if job.services.llm is None:
        return dataclasses.asdict(ModelResult())
    result = await Summarizer(llm_mod.for_job(job, "summarize"), budget(job.config)).run(src, d)
    return dataclasses.asdict(result)


async def _post(job: JobRun, src: Source, messages: list[str], headline: str, cached: bool) -> dict:
    for i, text in enumerate(messages):
        await job.say(text, once=f"sum:{i}")
    if not cached:
        cache_key, last_key = _keys(job, src)
        ttl = job.config.queue.ttl_s
        await job.redis.set(cache_key, json.dumps({"messages": messages, "headline": headline}), ex=ttl)
        await job.redis.set(last_key, json.dumps({"head": src.head, "files": {c.path: c.fingerprint
                                                                              for c in src.changes}}), ex=ttl)
    return {"posted": len(messages)}


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
