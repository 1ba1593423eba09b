"""The backport job: fetch → resolve → pick → test → publish → report, each stage shown in the thread.

Code owns every verdict: a pick is clean or it is not, tests pass or they do not, the checker accepts an LLM's
conflict resolution or rejects it. Whenever the job cannot finish on its own it escalates with the stage, the
reason, the files and the exact commands to finish by hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pygit2

from core import llm as llm_mod
from core import render, sandbox
from core.github import GitHubError
from core.kinds import BadParams, Kind, Params
from core.names import branch_problem
from jobs import backport_track as track
from jobs import git, resolve
from jobs.runtime import JobFailed, JobRun, NeedsPerson

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackportParams(Params):
    """One release, one or more refs: commit SHAs or `#N` for a merged PR of `repo`."""

    repo: str
    release: str
    refs: tuple[str, ...]
    draft: bool = False          # a conflict becomes a draft PR with the markers committed (a maintainer chose it)

    def check(self) -> None:
        if not self.refs:
            raise BadParams("BackportParams.refs: name at least one commit or PR")
        problem = branch_problem(self.release)
        if problem:
            raise BadParams(f"BackportParams.release: {problem}")


def branch_name(source: str, branch: str) -> str:
    return git.safe_ref(f"backport/{source}-to-{branch}")


async def run(job: JobRun) -> None:
    """The pipeline, with what happened recorded per (PR, release) for `/backport status` and the sweep."""
    p: BackportParams = job.params
    prs = [int(r[1:]) for r in p.refs if r.startswith("#")]
    await _track(job, prs, track.IN_FLIGHT)
    try:
        await _run(job)
    except NeedsPerson as exc:
        await _track(job, prs, track.NEEDS_PERSON, reason=f"{exc.escalation.stage}: {exc.escalation.reason}"[:300])
        raise
    except JobFailed as exc:
        await _track(job, prs, track.NEEDS_PERSON, reason=str(exc)[:300])
        raise


async def _track(job: JobRun, prs: list[int], state: str, *, link: str | None = None, **fields) -> None:
    """Record the state of each PR of this job for its release; the thread is the link unless one is given."""
    if not prs:
        return
    if link is None:
        info = await job.thread.info()
        link = ""
        if info.get("thread_ts"):
            try:
                link = await job.thread.chat.permalink(info["channel"], info["thread_ts"])
            except Exception as exc:         # a link is a convenience; the record is what matters
                log.warning("no permalink for %s: %s", job.key, exc)
    for n in prs:
        await track.record(job.redis, job.params.repo, job.params.release, n, state, job=job.key, link=link,
                           **{"reason": "", **fields})


async def _run(job: JobRun) -> None:
    p: BackportParams = job.params
    repo_cfg = job.config.repo(p.repo)
    if repo_cfg is None:
        raise JobFailed(f"{p.repo} is not configured here any more")
    branch = repo_cfg.branch_for(p.release)
    token = job.config.env.github_token
    mirror = git.Mirror(job.config.env.data_dir, repo_cfg.github, repo_cfg.clone_url, token)

    await job.stage("fetch", lambda: _fetch(job, mirror), detail="fetching the repository")
    plan = await job.stage("resolve", lambda: _resolve(job, mirror, repo_cfg, branch), detail="resolving refs")
    repo = mirror.repo()
    picked = await job.stage("pick", lambda: _pick(job, repo, plan, repo_cfg), detail="cherry-picking")
    if picked["empty"]:
        await _track(job, plan["prs"], track.SKIPPED, reason=f"already applied: picking it changes nothing on {branch}")
        await job.done(f":information_source: Already applied on {render.lit(branch)}: cherry-picking "
                       f"{_refs_text(plan)} changes nothing there. No branch or PR was made.",
                       detail=f"already applied on {branch}")
        return
    if picked.get("conflicts"):
        tested = {"ran": False, "summary": "not run: the draft holds conflict markers"}
    else:
        tested = await job.stage("test", lambda: _test(job, repo, plan, picked, repo_cfg), detail="running tests")
    published = await job.stage("publish", lambda: _publish(job, mirror, plan, picked, tested, repo_cfg),
                                detail="pushing and opening the PR")
    await job.stage("report", lambda: _report(job, plan, published), detail="reporting")
    if picked.get("conflicts"):
        await _track(job, plan["prs"], track.NEEDS_PERSON, link=published.get("pr_url") or None,
                     reason=f"draft PR with conflicts in {len(picked['conflicts'])} file(s)")
        await job.done(f":construction: Draft PR with conflicts: {published.get('pr_url') or published['branch']}. "
                       f"Markers remain in {render.lits(picked['conflicts'], 20)}; its `backport/conflicts` status "
                       "fails until they are gone.", detail="draft PR with conflicts")
        return
    await _track(job, plan["prs"], track.PR_OPEN, link=published.get("pr_url") or "")
    where = published.get("pr_url") or f"branch `{published['branch']}`"
    review = ""
    if published.get("pr_url") and picked.get("model_lines"):
        review = (f" {len(picked['model_lines'])} line(s) were written by the model and are in neither the branch "
                  f"nor the original commit: review them first ({published['pr_url']}#written-by-the-model).")
    if picked.get("not_applicable"):
        review += (f" {len(picked['not_applicable'])} hunk(s) of the original were declared not applicable; the PR "
                   "lists them with the reasons and is labelled for careful review.")
    await job.done(f":white_check_mark: Backport ready for review: {where}.{review}", detail=where)


def _refs_text(plan: dict) -> str:
    return ", ".join(f"#{n}" for n in plan["prs"]) or ", ".join(p["sha"][:10] for p in plan["picks"])


async def _fetch(job: JobRun, mirror: git.Mirror) -> dict:
    try:
        await asyncio.to_thread(mirror.sync)
    except git.GitError as exc:
        raise JobFailed(str(exc))
    return {}


async def _resolve(job: JobRun, mirror: git.Mirror, repo_cfg, branch: str) -> dict:
    repo = mirror.repo()
    tip = git.branch_tip(repo, branch)
    if tip is None:
        listed = ", ".join(f"{k}→{v}" for k, v in repo_cfg.releases.items()) or "none configured"
        raise JobFailed(f"there is no branch {render.lit(branch)} in {repo_cfg.github} (releases: {listed})")
    picks, prs, title = [], [], ""
    for ref in job.params.refs:
        if ref.startswith("#"):
            number = int(ref[1:])
            pr_picks, facts = await pr_commits(job, repo, repo_cfg.github, number)
            await job.audit.write("resolve", "pr", f"#{number} {facts['title']}", url=facts["url"],
                                  merge_sha=facts["merge_sha"], commits=[p["sha"] for p in pr_picks])
            await track.record(job.redis, repo_cfg.github, job.params.release, number, track.IN_FLIGHT, job=job.key,
                               **facts)
            picks.extend(pr_picks)
            prs.append(number)
            title = title or facts["title"]
        else:
            try:
                commit = git.resolve_commit(repo, ref)
            except git.GitError as exc:
                raise JobFailed(str(exc))
            picks.append({"sha": str(commit.id), "mainline": 1 if len(commit.parents) > 1 else 0,
                          "subject": _subject(commit)})
    if not picks:
        raise JobFailed("nothing to backport")
    # Only reviewed history is backported: a commit must be on the default branch (or a configured protected
    # branch). A PR's head fetched for a check, or any other stray object in the mirror, is refused.
    sources = [repo_cfg.default_branch, *repo_cfg.protected_branches]
    outside = await asyncio.to_thread(_not_reachable, repo, [p["sha"] for p in picks], sources)
    if outside:
        raise JobFailed(f"{', '.join(s[:10] for s in outside)} is not on "
                        f"{' or '.join(render.lit(b) for b in sources)}; only merged work is backported")
    source = f"pr{prs[0]}" if prs else picks[0]["sha"][:10]
    title = title or picks[0]["subject"]
    lines = [f"• `{p['sha'][:10]}` {render.inert(p['subject'])}" for p in picks[:20]]
    await job.say(f"Resolved: {len(picks)} commit(s) onto `{branch}` (tip `{str(tip.id)[:10]}`)\n" + "\n".join(lines),
                  once="resolved")
    return {"branch": branch, "tip": str(tip.id), "picks": picks, "prs": prs, "source": source, "title": title,
            "release": job.params.release}


def _not_reachable(repo: pygit2.Repository, shas: list[str], branches: list[str]) -> list[str]:
    """The SHAs that none of `branches` contains."""
    tips = [t.id for t in (git.branch_tip(repo, b) for b in branches) if t is not None]
    out = []
    for sha in shas:
        oid = pygit2.Oid(hex=sha)
        if not any(tip == oid or repo.descendant_of(tip, oid) for tip in tips):
            out.append(sha)
    return out


def _subject(commit: pygit2.Commit) -> str:
    return (commit.message or "").strip().splitlines()[0][:200] if commit.message.strip() else str(commit.id)[:10]


async def pr_commits(job: JobRun, repo: pygit2.Repository, github: str, number: int) -> tuple[list[dict], dict]:
    """A merged PR's commits to pick, in order (its merge commit, its rebased chain, or its squash), and its
    facts: title, url, merge_sha, merged_at."""
    gh = job.services.github
    if gh is None:
        raise JobFailed(f"#{number} is a PR, and resolving PRs needs GitHub credentials (GITHUB_TOKEN); "
                        "give the commit SHAs instead")
    try:
        pr = await gh.pull(github, number)
        if not pr.get("merged") and not pr.get("merged_at"):
            raise JobFailed(f"PR #{number} is not merged; only merged PRs can be backported")
        merge_sha = pr.get("merge_commit_sha")
        listed = await gh.pull_commits(github, number)
    except GitHubError as exc:
        if exc.status == 404:
            raise JobFailed(f"PR #{number} does not exist in {github}")
        raise
    try:
        merged = git.resolve_commit(repo, merge_sha)
    except git.GitError:
        raise JobFailed(f"PR #{number} was merged as {merge_sha}, which is not in the mirror yet; try again shortly")
    title = pr.get("title") or _subject(merged)
    facts = {"title": str(title)[:300], "url": str(pr.get("html_url", "")), "merge_sha": str(merged.id),
             "merged_at": str(pr.get("merged_at") or "")}
    if len(merged.parents) > 1:  # a merge commit: pick it against its first parent
        return [{"sha": str(merged.id), "mainline": 1, "subject": _subject(merged)}], facts
    n = len(listed)
    if n > 1 and listed and (listed[-1].get("commit", {}).get("message", "").strip()
                                 == merged.message.strip()):
        # Rebase-merged: the PR's n commits are the last n first-parent commits ending at the merge SHA.
        chain, c = [], merged
        for _ in range(n):
            chain.append(c)
            if not c.parents:
                break
            c = c.parents[0]
        return [{"sha": str(x.id), "mainline": 0, "subject": _subject(x)} for x in reversed(chain)], facts
    return [{"sha": str(merged.id), "mainline": 0, "subject": _subject(merged)}], facts  # squash-merged


async def _pick(job: JobRun, repo: pygit2.Repository, plan: dict, repo_cfg) -> dict:
    head = git.commit_at(repo, plan["tip"])
    commits, empty_picks, settled, llm_files = [], [], [], []
    conflicted: list[str] = []
    not_applicable: list[dict] = []
    model_lines: list[dict] = []
    diffs: list[str] = []
    usage: list[str] = []
    for p in plan["picks"]:
        original = git.commit_at(repo, p["sha"])
        result = await asyncio.to_thread(git.pick, repo, original, head, p["mainline"] or 1)
        tree: str | None
        settled.extend(result.whitespace_settled)
        if result.conflicts and job.params.draft:
            files = [c.path for c in result.conflicts]
            tree = await asyncio.to_thread(git.tree_with_markers, repo, original, head, p["mainline"] or 1)
            conflicted.extend(files)
            await job.say(f":construction: Conflicts picking `{p['sha'][:10]}` in {render.lits(files, 40)}: "
                          "committed with the markers, for a draft PR.", once=f"draft:{p['sha']}")
        elif result.conflicts:
            files = [c.path for c in result.conflicts]
            await job.audit.write("pick", "conflict", f"{p['sha'][:10]}: " + ", ".join(files))
            if job.services.llm is None:
                await job.say(f":warning: Conflicts picking `{p['sha'][:10]}` in {len(files)} file(s); "
                              f"{llm_mod.SKIPPED}.", once=f"conflict:{p['sha']}")
                raise NeedsPerson(_escalation(job, repo, plan, original, head, "pick",
                                              f"cherry-pick of {p['sha'][:10]} conflicts, and no LLM is available",
                                              files))
            await job.say(f":robot_face: Conflicts picking `{p['sha'][:10]}` in {render.lits(files, 40)};"
                          " asking Claude to resolve them (code checks the result).", once=f"conflict:{p['sha']}")
            outcome = await resolve.resolve_conflicts(job, repo, original, head, result, p["mainline"] or 1)
            if not outcome.ok:
                esc = _escalation(job, repo, plan, original, head, "resolve conflicts", outcome.reason, files)
                esc.diff = outcome.model_diff
                raise NeedsPerson(esc)
            tree = outcome.tree
            llm_files.extend(outcome.changed)
            not_applicable.extend(dict(na, sha=p["sha"]) for na in outcome.not_applicable)
            model_lines.extend(outcome.model_lines)
            if outcome.model_diff:
                diffs.append(outcome.model_diff)
            usage.append(outcome.usage)
            await job.say(f":white_check_mark: Claude's resolution passed the checks "
                          f"({render.lits(outcome.changed, 40)}; {outcome.usage}).", once=f"resolved:{p['sha']}")
        elif result.empty:
            empty_picks.append(p["sha"])
            continue
        else:
            tree = result.tree
        assert tree is not None
        bp = job.config.backport_for(repo_cfg)
        new = git.commit_tree(repo, tree, head, original, (bp.name, bp.email), signoff=bp.signoff)
        commits.append(new)
        head = git.commit_at(repo, new)
    if settled:
        await job.say("Whitespace-only conflicts settled without an LLM in: " +
                      render.lits(sorted(set(settled)), 40), once="ws")
    if empty_picks and commits:
        await job.say(f"Skipped {len(empty_picks)} commit(s) already on {render.lit(plan['branch'])}: " +
                      ", ".join(s[:10] for s in empty_picks), once="skipped")
    if commits:
        tip = git.commit_at(repo, plan["tip"])
        patch = await asyncio.to_thread(lambda: repo.diff(tip, head).patch or "")
        await job.audit.write("pick", "diff", patch, base=plan["tip"], head=str(head.id))
        await job.say(f"Picked {len(commits)} commit(s) cleanly onto {render.lit(plan['branch'])}"
                      + (f" ({len(set(llm_files))} file(s) resolved by an LLM)" if llm_files else "") + ".",
                      once="picked")
    return {"head": str(head.id), "commits": commits, "empty": not commits, "settled": sorted(set(settled)),
            "not_applicable": not_applicable, "model_lines": model_lines[:200],
            "model_diff": "\n".join(diffs)[:resolve.DIFF_SHOWN], "usage": usage,
            "llm_files": sorted(set(llm_files)), "conflicts": sorted(set(conflicted))}


def _escalation(job: JobRun, repo, plan: dict, original, head, stage: str, reason: str,
                files: list[str], log_tail: str = "") -> render.Escalation:
    hints = []
    if files and original.parents:
        deps = git.missing_dependencies(repo, original, repo[pygit2.Oid(hex=plan["tip"])], files)
        if deps:
            listed = ", ".join(f"`{sha}` {render.inert(subject)[:80]}" for sha, subject in deps)
            hints.append(f"These earlier commits touch the same files and are not on {render.lit(plan['branch'])}; "
                         f"the backport may depend on them: {listed}")
    # A conflict a person should finish can become a draft PR holding the markers (never a ready one).
    actions = [(DRAFT_ACTION, "Open as draft PR with conflicts")] if files and stage in CONFLICT_STAGES else []
    return render.Escalation(stage=stage, reason=reason, files=files, commands=manual_commands(plan),
                             log_tail=log_tail, hints=hints, actions=actions)


DRAFT_ACTION = "backport_draft"
CONFLICT_STAGES = ("pick", "resolve conflicts")


def manual_commands(plan: dict) -> list[str]:
    name = branch_name(plan["source"], plan["branch"])
    shas = " ".join(p["sha"] for p in plan["picks"])
    mainline = "-m 1 " if any(p["mainline"] for p in plan["picks"]) else ""
    return [
        "git fetch origin",
        f"git switch -c {name} origin/{plan['branch']}",
        f"git cherry-pick -x {mainline}{shas}",
        "# resolve any conflicts, `git add` the files, then: git cherry-pick --continue",
        f"git push origin {name}",
    ]


async def _test(job: JobRun, repo, plan: dict, picked: dict, repo_cfg) -> dict:
    if not repo_cfg.test_command:
        await job.say("No `test_command` is configured for this repo, so nothing was run.", once="test-none")
        return {"ran": False, "summary": "not run (no test_command configured)"}
    work = Path(job.config.env.data_dir) / "work"
    limits = sandbox.limits_for(job.config, repo_cfg, repo_cfg.test_timeout_s)
    for attempt in (1, 2):
        path = await asyncio.to_thread(git.checkout, repo, picked["head"], work)
        try:
            result = await sandbox.run(repo_cfg.test_command, path, limits, secrets=job.config.env.secrets())
        except sandbox.Unavailable as exc:
            raise NeedsPerson(_escalation(job, repo, plan, repo[pygit2.Oid(hex=plan["picks"][0]["sha"])], None,
                                          "test", f"the tests were not run: {exc}", [], ""))
        finally:
            await asyncio.to_thread(git.remove_checkout, path)
        await job.audit.write("test", "output", result.output, returncode=result.returncode,
                              seconds=round(result.seconds, 1), isolated=result.isolated, sandbox=result.applied)
        if not result.isolated:
            await job.say(":warning: The tests ran WITHOUT a sandbox (`[sandbox] allow_unisolated = true`): "
                          "the code could see this machine's network and files.", once=f"unisolated:{attempt}")
        where = "in the sandbox, no network" if result.isolated else "unsandboxed"
        if result.ok:
            summary = f"{render.lit(repo_cfg.test_command)} passed in {result.seconds:.0f}s ({where})"
            await job.say(f":white_check_mark: Tests passed: {summary}.", once=f"test-pass:{attempt}")
            return {"ran": True, "passed": True, "summary": summary, "llm_fixed": attempt == 2}
        why = ("timed out" if result.timed_out else result.verdict if result.limit
               else f"exited with {result.returncode}")
        await job.say(f":x: Tests {why} after {result.seconds:.0f}s.\n" + render.code(result.tail(25)),
                      once=f"test-fail:{attempt}")
        if attempt == 2 or job.services.llm is None:
            reason = f"{repo_cfg.test_command!r} {why}" + (f"; {llm_mod.SKIPPED}" if job.services.llm is None
                                                           else " again after Claude's fix")
            raise NeedsPerson(_escalation(job, repo, plan, repo[pygit2.Oid(hex=plan["picks"][0]["sha"])],
                                          None, "test", reason, [], result.tail(40)))
        fix = await resolve.fix_test_failure(job, repo, picked, result.tail(200))
        if not fix.ok:
            raise NeedsPerson(_escalation(job, repo, plan, repo[pygit2.Oid(hex=plan["picks"][0]["sha"])], None,
                                          "test", f"tests failed and Claude's fix was rejected: {fix.reason}",
                                          [], result.tail(40)))
        picked["head"] = fix.commit
        picked["commits"][-1] = fix.commit
        picked["llm_files"] = sorted(set(picked["llm_files"]) | set(fix.changed))
        await job.redis.hset(job.stages_key, "pick", json.dumps(picked))  # publish uses the fixed head
    raise AssertionError("unreachable")


async def _publish(job: JobRun, mirror: git.Mirror, plan: dict, picked: dict, tested: dict, repo_cfg) -> dict:
    name = branch_name(plan["source"], plan["branch"])
    gh = job.services.github
    if gh is not None:
        existing = await gh.open_pulls(repo_cfg.github, name, plan["branch"])
        if existing and await job.thread.claimed("pr-create"):
            # This run opened it, and its worker died before it could say so: finish the job's part.
            pr = existing[0]
            await gh.add_labels(repo_cfg.github, pr["number"], _labels(picked))
            await job.say(f"Opened {pr['html_url']}", once="pr-opened")
            return {"branch": name, "pr_url": pr["html_url"], "pr_number": pr["number"], "existing": False}
        if existing:
            pr = existing[0]
            await job.say(f"An open backport PR already exists for this source and branch: {pr['html_url']} — "
                          "not opening another.", once="pr-exists")
            return {"branch": name, "pr_url": pr["html_url"], "pr_number": pr["number"], "existing": True}
    try:
        await asyncio.to_thread(mirror.push, picked["head"], name)
    except git.GitError as exc:
        raise NeedsPerson(render.Escalation(stage="publish", reason=str(exc), commands=manual_commands(plan)))
    await job.say(f"Pushed `{name}` ({len(picked['commits'])} commit(s)).", once="pushed")
    if gh is None:
        await job.say("No GitHub credentials are set (GITHUB_TOKEN or a GitHub App), so no pull request was "
                      f"opened; the branch `{name}` is pushed and ready for one.", once="no-github")
        return {"branch": name, "pr_url": "", "pr_number": 0, "existing": False}
    title = f"[Backport {plan['release']}] {plan['title']}"[:250]
    body = pr_body(job, plan, picked, tested, repo_cfg)
    draft = bool(picked.get("conflicts"))
    await job.thread.claim("pr-create")        # from here on, an open PR for this branch is this run's
    pr = await gh.create_pull(repo_cfg.github, title, body, name, plan["branch"], draft=draft)
    await gh.add_labels(repo_cfg.github, pr["number"], _labels(picked))
    if draft:
        await gh.commit_status(repo_cfg.github, picked["head"], "failure", CONFLICT_STATUS,
                               f"conflict markers remain in {len(picked['conflicts'])} file(s)")
    await job.say(f"Opened {pr['html_url']}" + (" as a draft" if draft else ""), once="pr-opened")
    return {"branch": name, "pr_url": pr["html_url"], "pr_number": pr["number"], "existing": False}


CONFLICT_STATUS = "backport/conflicts"
CONFLICT_LABEL = "backport-conflict"


def _labels(picked: dict) -> list[str]:
    if picked.get("conflicts"):
        return ["backport", CONFLICT_LABEL]
    return (["backport"] + (["ai-resolved-conflicts"] if picked["llm_files"] else [])
            + (["needs-careful-review"] if picked.get("not_applicable") else []))


def pr_body(job: JobRun, plan: dict, picked: dict, tested: dict, repo_cfg) -> str:
    sources = []
    for n in plan["prs"]:
        sources.append(f"- #{n}")
    for p in plan["picks"]:
        sources.append(f"- {p['sha']} {p['subject']}")
    settled = picked.get("settled") or []
    llm_files = picked.get("llm_files") or []
    if picked.get("conflicts"):
        risk = ("**Not mergeable as it is**: conflict markers are committed in the files listed under "
                "\"Conflicts to finish by hand\".")
    elif llm_files:
        risk = ("**Higher**: an LLM changed the files listed below to resolve conflicts or a test failure; "
                "review those changes line by line against the original.")
    elif settled:
        risk = "Low: the pick needed only whitespace-only conflict settling (" + ", ".join(settled) + ")."
    else:
        risk = "Low: every commit applied cleanly with git's three-way merge."
    if not tested.get("ran"):
        risk += " Tests were not run by the bot."
    return "\n".join([
        "## What changed",
        f"Backport of {plan['title']} to `{plan['branch']}` (release {plan['release']}), "
        f"{len(picked['commits'])} commit(s), each keeping its original message with a "
        "`(cherry picked from commit …)` line.",
        "",
        "## Original source",
        *sources,
        "",
        "## Target branch",
        f"`{plan['branch']}` (at `{plan['tip'][:10]}` when picked)",
        "",
        "## Validation",
        f"- {tested['summary']}",
        "",
        "## Risk",
        risk,
        "",
        "## Files changed by an LLM",
        *([f"- {gh_code(f)}" for f in llm_files] or ["None."]),
        "",
        *_model_sections(picked),
        *_conflict_section(plan, picked),
        f"<sub>Opened by the maintainer bot, job `{job.key}`. A maintainer must review and merge.</sub>",
    ])


async def _report(job: JobRun, plan: dict, published: dict) -> dict:
    gh = job.services.github
    if gh is None or not published.get("pr_url"):
        return {}
    repo_cfg = job.config.repo(job.params.repo)
    for n in plan["prs"]:
        if not await job.thread.claim(f"comment:{n}"):     # commented already, by a worker that then died
            continue
        try:
            await gh.comment(repo_cfg.github, n, f"Backport to `{plan['branch']}`: {published['pr_url']}")
        except GitHubError as exc:
            if exc.status is not None:                   # a definite answer: the comment was not made
                await job.thread.unclaim(f"comment:{n}")
            await job.say(f"Could not comment on #{n}: {exc}", once=f"comment-fail:{n}")
    return {}


def gh_code(text: str) -> str:
    """Untrusted text as inline code in GitHub markdown: a backtick can't end it, no @mention or link lives."""
    body = str(text).replace("`", "\u02cb").replace("\r", " ").replace("\n", " ")
    return f"`{body[:300]}`"


def gh_block(text: str, lang: str = "") -> str:
    """Untrusted text as a fenced block in GitHub markdown that it cannot close."""
    return f"````{lang}\n{text.replace('````', chr(0x2035) * 4)}\n````"


def _conflict_section(plan: dict, picked: dict) -> list[str]:
    """A draft's account of the conflicts left for a person, with the commands to finish."""
    files = picked.get("conflicts") or []
    if not files:
        return []
    name = branch_name(plan["source"], plan["branch"])
    return ["## Conflicts to finish by hand", "",
            "This is a **draft**: the cherry-pick conflicted and the markers are committed as they are. The "
            f"`{CONFLICT_STATUS}` status fails until no marker is left.", "",
            *[f"- {gh_code(f)}" for f in files], "",
            gh_block("\n".join([f"git fetch origin {name}", f"git switch {name}",
                                "# edit the files above until no <<<<<<< / ======= / >>>>>>> line is left",
                                "git commit -a --signoff", f"git push origin {name}"]), "sh"), ""]


def _model_sections(picked: dict) -> list[str]:
    """The PR body's account of what the model did beyond the mechanics: hunks it declared not applicable,
    lines it wrote that neither side has, and its diff against the mechanical merge."""
    out: list[str] = []
    na = picked.get("not_applicable") or []
    if na:
        out += ["## Not applied: declared not applicable by the model", "",
                "The checker accepted these only because the model gave a reason. **Check each one.**", ""]
        out += [f"- {x['hunk']} in {gh_code(x['path'])} ({gh_code(x['first'])}): {gh_code(x['reason'])}" for x in na]
        out.append("")
    lines = picked.get("model_lines") or []
    if lines:
        out += ['<a id="written-by-the-model"></a>', "## Written by the model, review these", "",
                f"{len(lines)} line(s) the model wrote are in neither the release branch nor the original commit:",
                "", gh_block("\n".join(f"{x['path']}: {x['line'][:300]}" for x in lines[:100])), ""]
    if picked.get("model_diff"):
        out += ["<details><summary>The model's edits against the mechanical merge</summary>", "",
                gh_block(picked["model_diff"], "diff"), "", "</details>", ""]
    return out


KIND = Kind("backport", "bp", BackportParams, run, command="backport",
            about="cherry-pick onto a release branch, test in the sandbox, open the PR or escalate")
