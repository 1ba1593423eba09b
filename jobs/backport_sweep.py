"""`/backport status`, the scheduled sweep, and reconciling what reached a release branch.

- status (`backport-status`): fetch → survey → the table of each release, newest merge first, each row linked.
- sweep (`backport-sweep`): fetch → survey (what is waiting, oldest merge first, at most `sweep_max` per
  release) → per-PR mode: one backport job per PR (the usual pipeline, each in its own thread) and a wait for
  them; rolling mode: one PR per release branch rebuilt from the branch tip each run with every earlier pick
  still waiting plus the new ones → a summary in notify_channel: opened, updated, needs a person, skipped.
- reconcile (`backport-reconcile`, from a push to a release branch or a merged backport PR): the source PR is
  marked done (label, board item moved) only once its change is on the branch; a revert on the branch takes
  the mark off again and the PR is waiting once more.
- markers (`backport-markers`): a draft conflict PR's `backport/conflicts` status, failing while a conflict
  marker is left in a file it changes.

`schedule(services, now)` runs every minute in each worker and enqueues the sweeps whose cron fires (once, across
every worker). Everything that picks goes through jobs/backport.py's pipeline pieces and checks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pygit2
from croniter import croniter

from core import render, sandbox
from core.kinds import BadParams, Kind, Params
from core.names import branch_problem
from core.queue import JobRequest, job_info, submit
from jobs import backport, git, resolve
from jobs import backport_track as track
from jobs.runtime import JobFailed, JobRun

log = logging.getLogger(__name__)

WAIT_POLL_S = 1.0
ROLLING_PREFIX = "backport/rolling-to-"


@dataclass(frozen=True)
class StatusParams(Params):
    repo: str
    release: str = ""            # "" = every configured release

    def check(self) -> None:
        if self.release and branch_problem(self.release):
            raise BadParams(f"StatusParams.release: {branch_problem(self.release)}")


@dataclass(frozen=True)
class SweepParams(Params):
    repo: str
    release: str = ""            # "" = every configured release
    at: str = ""                 # the scheduled minute (UTC) that fired it, or "by <user>" when asked by hand

    def check(self) -> None:
        if self.release and branch_problem(self.release):
            raise BadParams(f"SweepParams.release: {branch_problem(self.release)}")


@dataclass(frozen=True)
class ReconcileParams(Params):
    repo: str
    release: str
    head: str = ""               # the branch head the event reported (one job per push)
    closed_url: str = ""         # a backport PR closed without merging: what it held is waiting again
    quiet: bool = True


@dataclass(frozen=True)
class MarkersParams(Params):
    repo: str
    number: int
    head: str
    quiet: bool = True

    def check(self) -> None:
        if len(self.head) != 40 or not all(c in "0123456789abcdef" for c in self.head):
            raise BadParams("MarkersParams.head: expected a full commit SHA")


def _repo_cfg(job: JobRun):
    cfg = job.config.repo(job.params.repo)
    if cfg is None:
        raise JobFailed(f"{job.params.repo} is not configured here any more")
    return cfg


def _releases(repo_cfg, release: str) -> list[str]:
    if release:
        return [release]
    names = list(repo_cfg.releases)
    if not names:
        raise JobFailed(f"{repo_cfg.github} has no releases configured (`releases` in its [[repos]] table)")
    return names


def _mirror(job: JobRun, repo_cfg) -> git.Mirror:
    return git.Mirror(job.config.env.data_dir, repo_cfg.github, repo_cfg.clone_url, job.config.env.github_token)


async def _fetch(job: JobRun, repo_cfg) -> dict:
    try:
        await asyncio.to_thread(_mirror(job, repo_cfg).sync)
    except git.GitError as exc:
        raise JobFailed(str(exc))
    return {}


async def _survey(job: JobRun, repo_cfg, releases: list[str]) -> dict:
    """Rows per release (JSON), from GitHub's labels and board, the store's records and the branch itself."""
    bp = job.config.backport_for(repo_cfg)
    if job.services.github is None:
        await job.say("No GitHub credentials are set, so labels and boards can't be read: only backports asked "
                      "for by command are listed.", once="no-github")
    try:
        wanted, _board = await track.wanted(job.services.github, repo_cfg, bp, releases)
    except LookupError as exc:
        raise JobFailed(str(exc))
    repo = _mirror(job, repo_cfg).repo()
    out = {}
    for release in releases:
        branch = repo_cfg.branch_for(release)
        log_ = await asyncio.to_thread(track.scan_branch, repo, branch, repo_cfg.default_branch)
        rows = await track.survey(job.redis, repo, repo_cfg, release, wanted.get(release, {}), log_)
        out[release] = {"branch": branch, "exists": log_ is not None, "rows": [r.as_dict() for r in rows]}
    return out


# --- status --------------------------------------------------------------------------------------------------
async def run_status(job: JobRun) -> None:
    repo_cfg = _repo_cfg(job)
    releases = _releases(repo_cfg, job.params.release)
    await job.stage("fetch", lambda: _fetch(job, repo_cfg), detail="fetching the repository")
    survey = await job.stage("survey", lambda: _survey(job, repo_cfg, releases), detail="reading labels, board, branches")
    counts = []
    for release, data in survey.items():
        rows = [track.Row(**r) for r in data["rows"]]
        if not data["exists"]:
            await job.say(f"*{render.inert(release)}*: there is no branch {render.lit(data['branch'])} in "
                          f"{render.inert(repo_cfg.github)}.", once=f"status:{release}")
            continue
        await job.say(track.render_rows(release, data["branch"], rows), once=f"status:{release}")
        counts.append(f"{release}: {track.summary_line(rows)}")
    await job.done("", detail="; ".join(counts)[:200] or "nothing to show")


STATUS = Kind("backport-status", "bst", StatusParams, run_status,
              about="what each release still needs: waiting, in flight, PR open, needs a person, done, skipped")


# --- sweep ---------------------------------------------------------------------------------------------------
async def run_sweep(job: JobRun) -> None:
    repo_cfg = _repo_cfg(job)
    bp = job.config.backport_for(repo_cfg)
    releases = _releases(repo_cfg, job.params.release)
    await job.stage("fetch", lambda: _fetch(job, repo_cfg), detail="fetching the repository")
    survey = await job.stage("survey", lambda: _survey(job, repo_cfg, releases), detail="finding what is waiting")
    report: dict[str, list] = {"opened": [], "updated": [], "needs a person": [], "skipped": [], "running": []}
    for release, data in survey.items():
        if not data["exists"]:
            report["needs a person"].append({"release": release, "number": 0, "link": "",
                                             "reason": f"no branch {data['branch']}"})
            continue
        rows = [track.Row(**r) for r in data["rows"]]
        waiting = [r for r in reversed(rows) if r.state == track.WAITING][:bp.sweep_max]   # oldest merge first
        if bp.mode == "rolling":
            done = await job.stage(f"rolling:{release}",
                                   lambda: _rolling(job, repo_cfg, release, data["branch"], rows, waiting),
                                   detail=f"rebuilding the rolling PR for {release}")
        else:
            kids = await job.stage(f"enqueue:{release}", lambda: _enqueue(job, repo_cfg, release, waiting),
                                   detail=f"queueing {len(waiting)} backport(s) to {release}")
            done = await job.stage(f"wait:{release}", lambda: _wait(job, release, kids),
                                   detail=f"waiting for the backports to {release}")
        for what, items in done.items():
            report[what].extend(items)
    await job.stage("report", lambda: _report(job, report), detail="summing up")
    parts = [f"{len(v)} {k}" for k, v in report.items() if v]
    await job.done("", detail=", ".join(parts) or "nothing was waiting")


async def _enqueue(job: JobRun, repo_cfg, release: str, waiting: list[track.Row]) -> dict:
    """One backport job per waiting PR, in the sweep's channel. Each child's key follows from its parameters, so
    a sweep resumed after its worker died finds the children it queued (alive, or recorded since it started)
    and queues nobody twice."""
    q = job.config.queue
    started = float((await job.thread.info()).get("created") or 0)
    recs = await track.records(job.redis, repo_cfg.github, release)
    kids = []
    for row in waiting:
        req = JobRequest(kind=backport.KIND, params=backport.BackportParams(repo=repo_cfg.github, release=release,
                                                                            refs=(f"#{row.number}",)),
                         summary=f"backport #{row.number} → {release} ({repo_cfg.github}), from the sweep",
                         channel=(await job.thread.info())["channel"], dest=job.request.get("dest", "slack"),
                         origin={"sweep": job.key})
        rec = recs.get(row.number, {})
        if rec.get("job") == req.key and float(rec.get("at", 0)) >= started:
            kids.append([row.number, req.key])          # queued by this sweep before its worker died
            continue
        sub = await submit(job.services.queue, job.redis, req, timeout_s=q.job_timeout_s, heartbeat_s=q.heartbeat_s,
                           retries=q.retries, ttl_days=q.audit_ttl_days)
        await track.record(job.redis, repo_cfg.github, release, row.number, track.IN_FLIGHT, job=sub.key,
                           title=row.title, url=row.url, merge_sha=row.merge_sha, merged_at=row.merged_at)
        kids.append([row.number, sub.key])
    if kids:
        await job.say(f"Queued {len(kids)} backport(s) to {render.lit(release)}: "
                      + ", ".join(f"#{n} (`{k}`)" for n, k in kids), once=f"queued:{release}")
    return {"kids": kids}


async def _wait(job: JobRun, release: str, kids: dict) -> dict:
    """Wait for the children to end (the sweep runs on the low-priority slots, the children on the normal ones),
    at most until the sweep's own timeout draws near; then sort them by how they ended."""
    deadline = time.monotonic() + max(job.config.queue.job_timeout_s - 120, 30)
    out: dict[str, list] = {"opened": [], "needs a person": [], "skipped": [], "running": [], "updated": []}
    pending = {key: n for n, key in kids["kids"]}
    ended: dict[str, dict] = {}
    while pending and time.monotonic() < deadline:
        for key in list(pending):
            info = await job_info(job.redis, key)
            if info.get("status") not in track.ALIVE_STATUSES:
                ended[key] = info
                del pending[key]
        if pending:
            await asyncio.sleep(WAIT_POLL_S)
    recs = await track.records(job.redis, job.params.repo, release)
    for key, n in [(k, n) for n, k in kids["kids"]]:
        rec = recs.get(n, {})
        item = {"release": release, "number": n, "job": key, "link": rec.get("link", ""),
                "reason": rec.get("reason", "")}
        if key in pending:
            out["running"].append(item)
        elif rec.get("state") == track.PR_OPEN:
            out["opened"].append(item)
        elif rec.get("state") == track.SKIPPED:
            out["skipped"].append(item)
        else:
            item["reason"] = item["reason"] or ended.get(key, {}).get("detail", "")
            out["needs a person"].append(item)
    return out


ROLLING_KEY = "bot:bpt:rolling:{repo}:{branch}"


async def _rolling(job: JobRun, repo_cfg, release: str, branch: str, rows: list[track.Row],
                   waiting: list[track.Row]) -> dict:
    """The rolling PR of one release branch, rebuilt from the branch tip: every earlier pick not yet on the
    branch, then the new ones. An earlier pick that no longer applies keeps the PR as it was (nothing is lost);
    a new one that conflicts and can't be resolved is left out and needs a person."""
    out: dict[str, list] = {"opened": [], "updated": [], "needs a person": [], "skipped": [], "running": []}
    key = ROLLING_KEY.format(repo=repo_cfg.github.lower(), branch=branch)
    state = json.loads(await job.redis.get(key) or "{}")
    by_number = {r.number: r for r in rows}
    earlier = [n for n in state.get("prs", []) if n in by_number and by_number[n].state != track.DONE]
    new = [r.number for r in waiting if r.number not in earlier]
    mirror = _mirror(job, repo_cfg)
    repo = mirror.repo()
    tip = git.branch_tip(repo, branch)
    assert tip is not None
    head = tip
    bp = job.config.backport_for(repo_cfg)
    included: list[int] = []
    llm_files: list[str] = []
    lines: list[str] = []
    for n in earlier + new:
        row = by_number[n]
        try:
            picks, _facts = await backport.pr_commits(job, repo, repo_cfg.github, n)
        except JobFailed as exc:
            if n in earlier:
                return _kept(out, release, earlier, f"#{n} can no longer be resolved: {exc}", state)
            await track.record(job.redis, repo_cfg.github, release, n, track.NEEDS_PERSON, reason=str(exc)[:300],
                               link="", job=job.key)
            out["needs a person"].append({"release": release, "number": n, "reason": str(exc)[:300], "link": ""})
            continue
        start = head
        failed = ""
        made = 0
        for p in picks:
            original = git.commit_at(repo, p["sha"])
            result = await asyncio.to_thread(git.pick, repo, original, head, p["mainline"] or 1)
            if result.empty:
                continue
            tree = result.tree
            if result.conflicts:
                if job.services.llm is None:
                    failed = f"{p['sha'][:10]} conflicts in {', '.join(c.path for c in result.conflicts)[:200]}"
                    break
                outcome = await resolve.resolve_conflicts(job, repo, original, head, result, p["mainline"] or 1)
                if not outcome.ok:
                    failed = f"{p['sha'][:10]}: {outcome.reason}"[:300]
                    break
                tree = outcome.tree
                llm_files.extend(outcome.changed)
            assert tree is not None
            sha = git.commit_tree(repo, tree, head, original, (bp.name, bp.email), signoff=bp.signoff)
            head = git.commit_at(repo, sha)
            made += 1
        if failed:
            head = start
            if n in earlier:
                return _kept(out, release, earlier, f"#{n} no longer applies on {branch}: {failed}", state)
            hint = f"; left out of the rolling PR: `/backport {release} #{n}` runs it alone, with the escalation"
            await track.record(job.redis, repo_cfg.github, release, n, track.NEEDS_PERSON, link="", job=job.key,
                               reason=f"conflicts in the rolling rebuild: {failed}"[:250] + hint)
            out["needs a person"].append({"release": release, "number": n, "reason": failed[:200] + hint, "link": ""})
            continue
        if not made:
            await track.record(job.redis, repo_cfg.github, release, n, track.SKIPPED, job=job.key, link="",
                               reason=f"already applied: picking it changes nothing on {branch}")
            out["skipped"].append({"release": release, "number": n, "reason": "already applied", "link": ""})
            continue
        included.append(n)
        lines.append(f"- #{n} {backport.gh_code(row.title)} ({made} commit(s))")
    if not included:
        return out
    tested = await _rolling_test(job, repo, repo_cfg, str(head.id))
    if tested and not tested["passed"]:
        for n in new:
            if n in included:
                await track.record(job.redis, repo_cfg.github, release, n, track.NEEDS_PERSON, job=job.key, link="",
                                   reason=f"the rolling branch's tests failed: {tested['summary']}"[:300])
        return _kept(out, release, [n for n in included if n in new],
                     f"the rebuilt branch's tests failed ({tested['summary']}); the rolling PR was not changed", state)
    name = git.safe_ref(f"{ROLLING_PREFIX}{branch}")
    try:
        await asyncio.to_thread(mirror.push, str(head.id), name)
    except git.GitError as exc:
        return _kept(out, release, included, f"pushing {name} failed: {exc}", state)
    pr_url, pr_number, opened = "", 0, False
    gh = job.services.github
    body = "\n".join([
        "## What changed", f"Rolling backport to `{branch}` (release {release}): {len(included)} source PR(s), "
        "each commit keeping its original message with a `(cherry picked from commit …)` line. Rebuilt from the "
        "branch tip at every sweep.", "", "## Original source", *lines, "", "## Target branch",
        f"`{branch}` (at `{str(tip.id)[:10]}` when rebuilt)", "", "## Validation",
        f"- {tested['summary'] if tested else 'not run (no test_command configured)'}", "", "## Risk",
        ("**Higher**: an LLM resolved conflicts in the files below." if llm_files
         else "Low: every commit applied cleanly with git's three-way merge."), "", "## Files changed by an LLM",
        *([f"- {backport.gh_code(f)}" for f in sorted(set(llm_files))] or ["None."]), "",
        f"<sub>Kept by the maintainer bot, sweep job `{job.key}`. A maintainer must review and merge.</sub>"])
    if gh is not None:
        existing = await gh.open_pulls(repo_cfg.github, name, branch)
        if existing:
            pr = existing[0]
            await gh.update_pull(repo_cfg.github, pr["number"], body=body)
        else:
            pr = await gh.create_pull(repo_cfg.github, f"[Backport {release}] rolling backport of {len(included)} PR(s)",
                                      body, name, branch)
            opened = True
        await gh.add_labels(repo_cfg.github, pr["number"], ["backport"] + (["ai-resolved-conflicts"] if llm_files
                                                                             else []))
        pr_url, pr_number = str(pr.get("html_url", "")), int(pr["number"])
    await job.redis.set(key, json.dumps({"prs": included, "pr_number": pr_number, "pr_url": pr_url}))
    for n in included:
        await track.record(job.redis, repo_cfg.github, release, n, track.PR_OPEN, job=job.key, link=pr_url,
                           reason="in the rolling PR")
    item = {"release": release, "number": 0, "link": pr_url or name, "picks": included,
            "reason": f"{len(included)} pick(s): " + ", ".join(f"#{n}" for n in included)}
    out["opened" if opened else "updated"].append(item)
    return out


def _kept(out: dict, release: str, numbers: list[int], reason: str, state: dict) -> dict:
    """The rolling PR stays as it was; the reason goes to a person."""
    out["needs a person"].append({"release": release, "number": state.get("pr_number", 0),
                                  "link": state.get("pr_url", ""), "reason": reason[:300], "picks": numbers})
    return out


async def _rolling_test(job: JobRun, repo, repo_cfg, head: str) -> dict | None:
    if not repo_cfg.test_command:
        return None
    from pathlib import Path

    limits = sandbox.limits_for(job.config, repo_cfg, repo_cfg.test_timeout_s)
    path = await asyncio.to_thread(git.checkout, repo, head, Path(job.config.env.data_dir) / "work")
    try:
        result = await sandbox.run(repo_cfg.test_command, path, limits, secrets=job.config.env.secrets())
    except sandbox.Unavailable as exc:
        return {"passed": False, "summary": f"the tests were not run: {exc}"}
    finally:
        await asyncio.to_thread(git.remove_checkout, path)
    await job.audit.write("rolling", "test", result.output, returncode=result.returncode)
    verdict = "passed" if result.ok else f"failed ({result.returncode})"
    return {"passed": result.ok, "summary": f"{repo_cfg.test_command} {verdict} in {result.seconds:.0f}s"}


async def _report(job: JobRun, report: dict) -> dict:
    lines = [f"*Backport sweep of {render.inert(job.params.repo)}*"
             + (f" ({render.inert(job.params.at)})" if job.params.at else "")]
    for what, items in report.items():
        if not items:
            continue
        shown = []
        for it in items[:30]:
            target = f"#{it['number']}" if it.get("number") else ""
            if it.get("link", "").startswith(("https://", "http://")):
                where = "thread" if "slack.com/" in it["link"] else "PR"
                target = f"{target} → {render.link(it['link'], where)}".strip(" →")
            reason = f" ({render.inert(it['reason'])[:150]})" if it.get("reason") else ""
            shown.append(f"{render.inert(it['release'])} {target}{reason}".strip())
        more = f" and {len(items) - 30} more" if len(items) > 30 else ""
        lines.append(f"• *{what}* ({len(items)}): " + "; ".join(shown) + more)
    if len(lines) == 1:
        lines.append("Nothing was waiting.")
    await job.say("\n".join(lines), once="summary")
    return {}


SWEEP = Kind("backport-sweep", "bsw", SweepParams, run_sweep,
             about="backport what each release is waiting for (per PR or one rolling PR per branch), then sum up")


def sweep_request(services, repo_cfg, *, at: str, release: str = "", requester: str = "", channel: str = "",
                  dest: str = "slack") -> JobRequest:
    return JobRequest(kind=SWEEP, params=SweepParams(repo=repo_cfg.github, release=release, at=at),
                      summary=f"backport sweep of {repo_cfg.github}" + (f" → {release}" if release else ""),
                      requester=requester, channel=channel or services.config.slack.notify_channel, dest=dest,
                      priority="low")     # it waits for its children, which run on the normal slots


async def schedule(services, now: float) -> list[str]:
    """Enqueue each repo's sweep whose cron fires in the current minute; a marker in the store lets one worker
    of many do it. Returns the keys queued."""
    minute = datetime.fromtimestamp(now, UTC).replace(second=0, microsecond=0)
    q = services.config.queue
    out = []
    for repo_cfg in services.config.repos:
        cron = services.config.backport_for(repo_cfg).sweep
        if not cron or not croniter.match(cron, minute):
            continue
        at = minute.strftime("%Y-%m-%d %H:%M UTC")
        if not await services.redis.set(f"bot:bpt:fired:{repo_cfg.github.lower()}:{at}", "1", nx=True, ex=86400):
            continue
        req = sweep_request(services, repo_cfg, at=at)
        sub = await submit(services.queues[req.priority], services.redis, req, timeout_s=q.job_timeout_s,
                           heartbeat_s=q.heartbeat_s, retries=q.retries, ttl_days=q.audit_ttl_days)
        out.append(sub.key)
    return out


# --- reconcile -----------------------------------------------------------------------------------------------
async def run_reconcile(job: JobRun) -> None:
    repo_cfg = _repo_cfg(job)
    await job.stage("fetch", lambda: _fetch(job, repo_cfg), detail="fetching the repository")
    changed = await job.stage("reconcile", lambda: _reconcile(job, repo_cfg, job.params.release),
                              detail="marking what reached the branch")
    if changed["marked"] or changed["unmarked"]:
        parts = []
        if changed["marked"]:
            parts.append("on the branch now, marked done: " + ", ".join(f"#{n}" for n in changed["marked"]))
        if changed["unmarked"]:
            parts.append("reverted on the branch, waiting again: " + ", ".join(f"#{n}" for n in changed["unmarked"]))
        await job.say(f"{render.inert(job.params.release)}: " + "; ".join(parts), once="reconciled")
        await job.done("", detail="; ".join(parts)[:200])


async def _reconcile(job: JobRun, repo_cfg, release: str) -> dict:
    """Mark each wanted PR by what the branch really holds: done (label added, board item moved to the done
    column) only when its change is there, and back to waiting when a revert took it away."""
    bp = job.config.backport_for(repo_cfg)
    closed = job.params.closed_url
    if closed:
        for n, rec in (await track.records(job.redis, repo_cfg.github, release)).items():
            if rec.get("state") == track.PR_OPEN and rec.get("link") == closed:
                await track.record(job.redis, repo_cfg.github, release, n, track.WAITING, link="",
                                   reason="its backport PR was closed without merging")
        rolling = ROLLING_KEY.format(repo=repo_cfg.github.lower(), branch=repo_cfg.branch_for(release))
        if json.loads(await job.redis.get(rolling) or "{}").get("pr_url") == closed:
            await job.redis.delete(rolling)
    gh = job.services.github
    if gh is None:
        return {"marked": [], "unmarked": []}
    try:
        wanted, b = await track.wanted(gh, repo_cfg, bp, [release])
    except LookupError as exc:
        raise JobFailed(str(exc))
    repo = _mirror(job, repo_cfg).repo()
    branch = repo_cfg.branch_for(release)
    log_ = await asyncio.to_thread(track.scan_branch, repo, branch, repo_cfg.default_branch)
    if log_ is None:
        raise JobFailed(f"there is no branch {branch} in {repo_cfg.github}")
    done_label = bp.label_for(release)
    items = {}
    if b is not None:
        items = {it["pr"].number: it for it in b.items if it["pr"] is not None and it["release"] == release}
    recs = await track.records(job.redis, repo_cfg.github, release)
    numbers = set(wanted.get(release, {})) | set(items) | {n for n, r in recs.items() if r.get("state") == track.DONE}
    marked, unmarked = [], []
    for n in sorted(numbers):
        w = wanted.get(release, {}).get(n) or (items[n]["pr"] if n in items else None)
        sha = (w.merge_sha if w else "") or recs.get(n, {}).get("merge_sha", "")
        if not sha:
            continue
        on = await asyncio.to_thread(track.landed, repo, log_, sha)
        labelled = bool(w and done_label and any(x.lower() == done_label.lower() for x in w.labels))
        item = items.get(n)
        if on:
            touched = False
            if done_label and not labelled:
                await gh.add_labels(repo_cfg.github, n, [done_label])
                touched = True
            if item is not None and b is not None and item["status"] != bp.project_done_column:
                touched = await track.move(gh, repo_cfg.github, b, item["id"], bp.project_done_column) or touched
            if recs.get(n, {}).get("state") != track.DONE:
                await track.record(job.redis, repo_cfg.github, release, n, track.DONE, merge_sha=sha,
                                   link="" if on == "contained" else on, reason="")
                touched = True
            if touched:
                marked.append(n)
        else:
            touched = False
            if labelled:
                await gh.remove_label(repo_cfg.github, n, done_label)
                touched = True
            if item is not None and b is not None and item["status"] == bp.project_done_column:
                touched = await track.move(gh, repo_cfg.github, b, item["id"], bp.project_column) or touched
            if recs.get(n, {}).get("state") == track.DONE:
                await track.record(job.redis, repo_cfg.github, release, n, track.WAITING, reason="reverted on the branch",
                                   link="")
                touched = True
            if touched:
                unmarked.append(n)
    return {"marked": marked, "unmarked": unmarked}


RECONCILE = Kind("backport-reconcile", "brc", ReconcileParams, run_reconcile,
                 about="mark source PRs done once their change is on the release branch; unmark on a revert")


# --- conflict markers on a draft PR ---------------------------------------------------------------------------
def markers_in(repo: pygit2.Repository, base: str, head: str) -> list[str]:
    """Files the PR changes (against its merge base) that still hold a conflict marker line."""
    head_c = git.commit_at(repo, head)
    merge_base = repo.merge_base(pygit2.Oid(hex=base), head_c.id) or pygit2.Oid(hex=base)
    diff = repo.diff(git.commit_at(repo, merge_base), head_c)
    out = []
    for delta in diff.deltas:
        if delta.status == pygit2.enums.DeltaStatus.DELETED or delta.new_file.mode not in (0o100644, 0o100755):
            continue
        data = git.blob_bytes(repo, delta.new_file.id)
        if b"\0" in data[:8000]:
            continue
        for line in data.decode("utf-8", "replace").splitlines():
            if line.startswith(("<<<<<<< ", ">>>>>>> ", "||||||| ")) or line == "=======":
                out.append(delta.new_file.path)
                break
    return sorted(out)


async def run_markers(job: JobRun) -> None:
    repo_cfg = _repo_cfg(job)
    p: MarkersParams = job.params
    gh = job.services.github
    if gh is None:
        return
    await job.stage("fetch", lambda: _fetch(job, repo_cfg), detail="fetching the repository")

    async def check() -> dict:
        mirror = _mirror(job, repo_cfg)
        repo = await asyncio.to_thread(mirror.fetch_pull, p.number)
        pr = await gh.pull(repo_cfg.github, p.number)
        base = git.branch_tip(repo, str((pr.get("base") or {}).get("ref", "")))
        if base is None:
            raise JobFailed(f"the base branch of #{p.number} is not in the mirror")
        try:
            files = await asyncio.to_thread(markers_in, repo, str(base.id), p.head)
        except (KeyError, ValueError, git.GitError):
            raise JobFailed(f"{p.head[:10]} (the head of #{p.number}) is not in the mirror")
        state = "failure" if files else "success"
        text = (f"conflict markers remain in {len(files)} file(s): {', '.join(files)}" if files
                else "no conflict marker is left")
        await gh.commit_status(repo_cfg.github, p.head, state, backport.CONFLICT_STATUS, text[:140])
        return {"files": files}

    await job.stage("check", check, detail="looking for conflict markers")


MARKERS = Kind("backport-markers", "bmk", MarkersParams, run_markers,
               about="the backport/conflicts status of a draft conflict PR: failing while markers remain")
