"""GitHub's ways to ask for a backport, next to the job they start: a label matching `[backport] labels`
(`backport <release>`) on a merged PR, or a `/backport <release>` comment on a PR, each from someone with write
access. A comment before the merge is remembered and runs when the PR merges; a backport whose PR exists already
gets one reply on the source PR instead of a job. Also what keeps the tracking true: a push to a release branch
or a merged backport PR starts a reconcile; a backport PR closed unmerged makes its PRs wait again; a draft
conflict PR's pushes re-check its markers. Each returns the JobRequests for the web process to enqueue."""

from __future__ import annotations

import logging
import re

from core.github import can_write
from core.names import branch_problem
from core.payload import login, number, obj, text
from core.queue import JobRequest
from jobs import backport, backport_sweep, replies
from jobs.backport import BackportParams
from jobs.backport_track import release_of_label

log = logging.getLogger(__name__)

COMMENT = re.compile(r"^/backport\s+(?P<releases>[A-Za-z0-9._/,-]{1,200})\s*$", re.I | re.M)
PENDING_TTL_S = 180 * 86400      # a comment on an open PR waits this long for the merge
MAX_RELEASES = 5


def pending_key(repo: str, pr: int) -> str:
    """Releases asked for by `/backport` comments on a PR that was not merged yet (release -> who asked)."""
    return f"bot:backport:pending:{repo}#{int(pr)}"


async def on_pull_request(services, repo, payload: dict) -> list[JobRequest]:
    """A merged PR: the releases its labels ask for, and those asked for by comments before it merged."""
    pr = obj(payload.get("pull_request"))
    if number(pr.get("number")) is None or pr.get("merged") is not True:
        return []
    out = []
    if payload.get("action") == "closed":
        out += await _pending(services, repo, pr["number"])
    return out + await _from_label(services, repo, payload)


async def on_comment(services, repo, payload: dict) -> list[JobRequest]:
    issue = obj(payload.get("issue"))
    comment = obj(payload.get("comment"))
    if "pull_request" not in issue or number(issue.get("number")) is None \
            or not services.config.slack.notify_channel:
        return []
    m = COMMENT.search(text(comment.get("body")))
    who = login(obj(comment.get("user")).get("login"))
    if not m or not who or services.github is None:
        return []
    if not await can_write(services.github, repo.github, who):
        log.info("ignoring /backport from %s: no write access", who)
        return []
    releases = [r for r in m["releases"].split(",") if r and not branch_problem(r)][:MAX_RELEASES]
    pr_number = int(issue["number"])
    if not obj(issue.get("pull_request")).get("merged_at"):
        if text(issue.get("state")) == "closed":
            return []                           # closed without merging: nothing will ever be backported
        # Remembered, and run when the PR merges (as label-based backport tools do); said on the PR.
        if not releases:
            return []
        await services.redis.hset(pending_key(repo.github, pr_number), mapping={r: who for r in releases})
        await services.redis.expire(pending_key(repo.github, pr_number), PENDING_TTL_S)
        shown = ", ".join(f"`{r}`" for r in releases)
        return [replies.request_for(repo.github, pr_number,
                                    f"Noted: I will backport #{pr_number} to {shown} when it merges.",
                                    f"pending:{','.join(releases)}")]
    out = []
    for r in releases:
        out += await _unless_done(services, repo, pr_number, r, who)
    return out


async def _pending(services, repo, pr: int) -> list[JobRequest]:
    """The PR merged: run the backports asked for before it did."""
    asked = await services.redis.hgetall(pending_key(repo.github, pr))
    out = []
    for release, who in sorted(asked.items()):
        out += await _unless_done(services, repo, pr, release.decode(), who.decode())
    return out


async def _from_label(services, repo, payload: dict) -> list[JobRequest]:
    pr = obj(payload.get("pull_request"))
    action = payload.get("action")
    if action == "labeled":
        labels = [text(obj(payload.get("label")).get("name"))]
    elif action == "closed":
        raw = pr.get("labels")
        labels = [text(obj(lbl).get("name")) for lbl in raw] if isinstance(raw, list) else []
    else:
        return []
    patterns = services.config.backport_for(repo).labels
    if not any(release_of_label(patterns, name) for name in labels) or not services.config.slack.notify_channel:
        return []
    # Labels can be set by anyone with triage rights: like a comment, the label asks only for a writer.
    who = login(obj(payload.get("sender")).get("login"))
    if not who or not await can_write(services.github, repo.github, who):
        log.info("ignoring backport label on #%s: %r has no write access", pr.get("number"), who)
        return []
    out = []
    for name in labels:
        release = release_of_label(patterns, name)
        if release:
            out += await _unless_done(services, repo, int(pr["number"]), release, who)
    return out


def _release_of_branch(repo, branch: str) -> str:
    """The configured release whose branch this is ('' for none)."""
    return next((name for name, b in repo.releases.items() if b == branch), "")


async def on_push(services, repo, payload: dict) -> list[JobRequest]:
    """A push to a release branch (a merged backport, a direct push, a revert): reconcile that release."""
    ref = text(payload.get("ref"))
    if not ref.startswith("refs/heads/") or payload.get("deleted") is True or not services.config.slack.notify_channel:
        return []
    release = _release_of_branch(repo, ref[len("refs/heads/"):])
    after = text(payload.get("after"))
    if not release or not (len(after) == 40 and all(c in "0123456789abcdef" for c in after)):
        return []
    return [_reconcile(services, repo, release, head=after)]


def _reconcile(services, repo, release: str, *, head: str = "", closed_url: str = "") -> JobRequest:
    return JobRequest(kind=backport_sweep.RECONCILE,
                      params=backport_sweep.ReconcileParams(repo=repo.github, release=release, head=head,
                                                            closed_url=closed_url),
                      summary=f"backport reconcile of {repo.github} → {release}",
                      channel=services.config.slack.notify_channel, priority="low")


async def on_backport_pr(services, repo, payload: dict) -> list[JobRequest]:
    """A backport PR's life: merged (reconcile its release), closed unmerged (its PRs wait again), pushed to
    while a draft with conflicts (its markers re-checked)."""
    pr = obj(payload.get("pull_request"))
    n = number(pr.get("number"))
    base, head = text(obj(pr.get("base")).get("ref")), text(obj(pr.get("head")).get("ref"))
    release = _release_of_branch(repo, base)
    action = payload.get("action")
    if n is None or not release or not head.startswith("backport/") or not services.config.slack.notify_channel:
        return []
    if action == "closed":
        if pr.get("merged") is True:
            return [_reconcile(services, repo, release, head=text(pr.get("merge_commit_sha")))]
        return [_reconcile(services, repo, release, closed_url=text(pr.get("html_url"))[:300])]
    raw = pr.get("labels")
    labels = [text(obj(lbl).get("name")) for lbl in raw] if isinstance(raw, list) else []
    sha = text(obj(pr.get("head")).get("sha"))
    if action in ("opened", "synchronize", "reopened", "labeled") and backport.CONFLICT_LABEL in labels \
            and len(sha) == 40 and all(c in "0123456789abcdef" for c in sha):
        return [JobRequest(kind=backport_sweep.MARKERS,
                           params=backport_sweep.MarkersParams(repo=repo.github, number=n, head=sha),
                           summary=f"conflict markers of #{n} ({repo.github})",
                           channel=services.config.slack.notify_channel, priority="low")]
    return []


async def _unless_done(services, repo, pr: int, release: str, who: str) -> list[JobRequest]:
    """A backport job, or, when its PR already exists, one reply on the source PR pointing at it (no job, no
    new Slack thread)."""
    try:
        name = backport.branch_name(f"pr{pr}", repo.branch_for(release))
    except Exception:        # a release whose branch name git refuses
        return []
    existing = await services.github.open_pulls(repo.github, name, repo.branch_for(release)) \
        if services.github is not None else []
    if existing:
        url = str(existing[0].get("html_url", ""))
        return [replies.request_for(repo.github, pr, f"The backport of #{pr} to `{release}` exists already: {url}",
                                    f"exists:{release}:{existing[0].get('number')}")]
    return [JobRequest(kind=backport.KIND, params=BackportParams(repo=repo.github, release=release, refs=(f"#{pr}",)),
                       summary=f"backport #{pr} → {release} ({repo.github}), asked on GitHub by {who}",
                       channel=services.config.slack.notify_channel, dest="slack", origin={"github": who, "pr": pr})]
