"""`POST /github/webhook`: verified (HMAC-SHA256 over the raw body), each delivery acted on once, and routed
to jobs on the same queue the slash commands use. Results go to `[slack] notify_channel`.

Backport triggers: a `backport <release>` label on a merged PR, or a `/backport <release>` comment on a merged
PR, each by someone with write access. The handler only verifies, decides and queues: anything that talks to
Slack (a newcomer's PR-opened notice) is a job of its own. A delivery is marked seen only once its jobs are
queued, so a failure leaves GitHub's redelivery free to try again; one older than `MAX_AGE_S` (by the event's
own time) is ignored, so a replay after the seen-mark expired does nothing. Both JSON and GitHub's default
form encoding (`payload=<json>`) are accepted; the signature covers the raw body either way."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
import urllib.parse
from datetime import datetime

from aiohttp import web
from redis.exceptions import RedisError

from core.github import GitHubError, verify_signature
from core.names import branch_problem
from core.queue import JobRequest, QueueUnavailable, latest_head_key, submit

log = logging.getLogger(__name__)

LABEL = re.compile(r"^backport[ :/-]+(?P<release>[A-Za-z0-9._/-]{1,100})$", re.I)
COMMENT = re.compile(r"^/backport\s+(?P<releases>[A-Za-z0-9._/,-]{1,200})\s*$", re.I | re.M)
WRITE = {"admin", "maintain", "write"}
MAX_AGE_S = 3 * 86400          # a delivery whose event is older than this is ignored
SEEN_TTL_S = MAX_AGE_S + 86400  # the seen-mark outlives the window: every replay meets one or the other


async def handle(request: web.Request) -> web.Response:
    from bot.app import SERVICES

    services = request.app[SERVICES]
    metrics = services.metrics
    body = await request.read()
    secret = services.config.env.github_webhook_secret
    if not verify_signature(secret, body, request.headers.get("X-Hub-Signature-256")):
        metrics.inc("bot_webhooks_total", "GitHub webhook deliveries", outcome="bad-signature")
        return web.Response(status=401, text="bad or missing signature")
    delivery = request.headers.get("X-GitHub-Delivery", "")
    event = request.headers.get("X-GitHub-Event", "")
    if not re.fullmatch(r"[A-Za-z0-9-]{1,80}", delivery) or not event:
        return web.Response(status=400, text="missing delivery id or event")
    payload = parse_payload(body, request.headers.get("Content-Type", ""))
    if payload is None:
        return web.Response(status=400, text="body is not a JSON object (application/json or payload=<json>)")
    age = event_age(event, payload)
    if age is not None and age > MAX_AGE_S:
        metrics.inc("bot_webhooks_total", "GitHub webhook deliveries", outcome="stale")
        return web.Response(status=200, text="stale delivery ignored")
    seen = _seen(request)
    try:
        # Claimed while we work (so a concurrent redelivery waits its turn), kept only once the jobs are queued.
        if not await services.redis.set(seen, "working", nx=True, ex=SEEN_TTL_S):
            metrics.inc("bot_webhooks_total", "GitHub webhook deliveries", outcome="duplicate")
            return web.Response(status=200, text="duplicate delivery ignored")
        requests = await route(services, event, payload)
        keys = []
        for req in requests:
            q = services.config.queue
            sub = await submit(services.queues[req.priority], services.redis, req, timeout_s=q.job_timeout_s,
                               heartbeat_s=q.heartbeat_s, retries=q.retries, ttl_days=q.audit_ttl_days)
            keys.append(sub.key)
            if req.kind == "provenance":     # the newest head of the PR: older checks still queued stand down
                await services.redis.set(latest_head_key(req.params["repo"], req.params["pr"]), req.params["head"],
                                         ex=30 * 86400)
        await services.redis.set(seen, "done", ex=SEEN_TTL_S)
    except (QueueUnavailable, RedisError, OSError) as exc:
        await _forget(services, request)
        log.warning("webhook %s not queued: %s", delivery, exc.__class__.__name__)
        return web.Response(status=503, text="queue unavailable; redeliver later")
    except GitHubError as exc:
        await _forget(services, request)
        if exc.status is not None and 400 <= exc.status < 500:
            return web.Response(status=200, text="GitHub said no; nothing queued")
        return web.Response(status=502, text="GitHub lookup failed; redeliver later")
    except Exception:
        await _forget(services, request)
        log.exception("webhook %s failed", delivery)
        return web.Response(status=500, text="internal error; redeliver later")
    metrics.inc("bot_webhooks_total", "GitHub webhook deliveries", outcome="queued" if keys else "ignored",
                event=event)
    return web.json_response({"queued": keys})


def parse_payload(body: bytes, content_type: str) -> dict | None:
    """The event as a dict, from JSON or from GitHub's form encoding (`payload=<url-encoded json>`)."""
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            fields = urllib.parse.parse_qs(body.decode("utf-8"), max_num_fields=10)
            body = (fields.get("payload") or [""])[0].encode()
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def event_age(event: str, payload: dict, now: float | None = None) -> float | None:
    """Seconds since the event happened, by the payload's own clock (None when it carries none)."""
    pr = obj(payload.get("pull_request"))
    stamp = {"pull_request": pr.get("updated_at"),
             "issue_comment": obj(payload.get("comment")).get("created_at"),
             "check_run": obj(payload.get("check_run")).get("started_at"),
             "push": obj(payload.get("head_commit")).get("timestamp")}.get(event)
    if not isinstance(stamp, str) or len(stamp) > 40:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return (time.time() if now is None else now) - when


def _seen(request: web.Request) -> str:
    """The mark of one signed body: a redelivery, or the same body replayed under another delivery id, is
    acted on once."""
    signature = request.headers.get("X-Hub-Signature-256", "")
    return "bot:delivery:" + hashlib.sha256(signature.encode()).hexdigest()[:40]


async def _forget(services, request: web.Request) -> None:
    """Nothing was queued: let a redelivery try again."""
    with contextlib.suppress(Exception):
        await services.redis.delete(_seen(request))


def obj(value) -> dict:
    """A payload field that should be an object; anything else reads as empty (payloads are untrusted)."""
    return value if isinstance(value, dict) else {}


def text(value) -> str:
    return value if isinstance(value, str) else ""


def number(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**9 else None


async def route(services, event: str, payload: dict) -> list[JobRequest]:
    repo_name = text(obj(payload.get("repository")).get("full_name"))
    repo = services.config.repo(repo_name) if repo_name and "/" in repo_name else None
    if repo is None:
        return []
    if event == "pull_request":
        out = []
        pr = obj(payload.get("pull_request"))
        if number(pr.get("number")) is None:
            return []
        if payload.get("action") in ("opened", "synchronize", "reopened") and pr.get("number") \
                and "provenance" in services.config.sections and services.config.slack.notify_channel:
            head = text(obj(pr.get("head")).get("sha"))
            latest = await services.redis.get(latest_head_key(repo.github, pr["number"]))
            if latest is not None and latest.decode() == head:
                log.info("provenance of #%s: head %s already checked", pr["number"], head[:10])
            else:
                out.append(JobRequest(kind="provenance", priority="low",
                                      params={"repo": repo.github, "pr": int(pr["number"]), "head": head,
                                              "quiet": True},
                                      summary=f"provenance of #{pr['number']} ({repo.github})",
                                      channel=services.config.slack.notify_channel, dest="slack"))
        if payload.get("action") == "opened" and text(obj(pr.get("user")).get("login")):
            # A newcomer's PR is told to the maintainer who handed the issue out: a job, not a call from here.
            out.append(JobRequest(kind="pr-opened", priority="low", params={
                "repo": repo.github, "quiet": True,
                "pr": {"number": pr["number"], "title": text(pr.get("title"))[:300],
                       "body": text(pr.get("body"))[:5000], "html_url": text(pr.get("html_url"))[:300],
                       "user": {"login": text(obj(pr.get("user")).get("login"))[:39]}}},
                summary=f"PR #{pr['number']} opened ({repo.github})", dest="slack",
                channel=services.config.slack.notify_channel))
        if payload.get("action") == "closed" and pr.get("merged") is True:
            out += await _pending(services, repo, int(pr["number"]))
        return out + await _from_label(services, repo.github, payload)
    if event == "issue_comment" and payload.get("action") == "created":
        return await _from_comment(services, repo.github, payload)
    return []


def _reply(repo: str, number: int, body: str, mark: str) -> JobRequest:
    """A comment on the PR, made by a (quiet) job after the webhook has answered, once per `mark`."""
    return JobRequest(kind="gh-reply", priority="low", summary=f"reply on #{number} ({repo})", dest="slack",
                      params={"repo": repo, "pr": number, "body": body, "mark": mark, "quiet": True})


def pending_key(repo: str, number: int) -> str:
    """Releases asked for by `/backport` comments on a PR that was not merged yet (release -> who asked)."""
    return f"bot:backport:pending:{repo}#{int(number)}"


async def _pending(services, repo, number: int) -> list[JobRequest]:
    """The PR merged: run the backports asked for before it did."""
    asked = await services.redis.hgetall(pending_key(repo.github, number))
    out = []
    for release, who in sorted(asked.items()):
        release, who = release.decode(), who.decode()
        out += await _backport_unless_done(services, repo, number, release, who)
    return out


async def _backport_unless_done(services, repo, number: int, release: str, who: str) -> list[JobRequest]:
    """A backport job, or, when its PR already exists, one reply on the source PR pointing at it (no job, no
    new Slack thread)."""
    from jobs.backport import branch_name

    try:
        name = branch_name(f"pr{number}", repo.branch_for(release))
    except Exception:        # a release whose branch name git refuses
        return []
    existing = await services.github.open_pulls(repo.github, name, repo.branch_for(release)) \
        if services.github is not None else []
    if existing:
        url = str(existing[0].get("html_url", ""))
        return [_reply(repo.github, number, f"The backport of #{number} to `{release}` exists already: {url}",
                       f"exists:{release}:{existing[0].get('number')}")]
    return [_backport(services, repo.github, number, release, who)]


def _backport(services, repo: str, number: int, release: str, who: str) -> JobRequest:
    return JobRequest(kind="backport", params={"repo": repo, "release": release, "refs": [f"#{number}"]},
                      summary=f"backport #{number} → {release} ({repo}), asked on GitHub by {who}",
                      channel=services.config.slack.notify_channel, dest="slack",
                      origin={"github": who, "pr": number})


async def _from_label(services, repo: str, payload: dict) -> list[JobRequest]:
    pr = obj(payload.get("pull_request"))
    if pr.get("merged") is not True:
        return []
    action = payload.get("action")
    if action == "labeled":
        labels = [text(obj(payload.get("label")).get("name"))]
    elif action == "closed":
        raw = pr.get("labels") if isinstance(pr.get("labels"), list) else []
        labels = [text(obj(lbl).get("name")) for lbl in raw]
    else:
        return []
    who = text(obj(payload.get("sender")).get("login"))
    out = []
    if not any(LABEL.match(name) for name in labels) or not services.config.slack.notify_channel:
        return []
    # Labels can be set by anyone with triage rights: like a comment, the label asks only for a writer.
    if not re.fullmatch(r"[A-Za-z0-9-]{1,39}", who) or not await _can_write(services, repo, who):
        log.info("ignoring backport label on #%s: %r has no write access", pr.get("number"), who)
        return []
    for name in labels:
        m = LABEL.match(name)
        if m and services.config.slack.notify_channel:
            if branch_problem(m["release"]):
                log.info("ignoring label %r on #%s: the release %s", name, pr.get("number"),
                         branch_problem(m["release"]))
                continue
            out += await _backport_unless_done(services, services.config.repo(repo), int(pr["number"]),
                                               m["release"], who)
    return out


async def _from_comment(services, repo_name: str, payload: dict) -> list[JobRequest]:
    repo = services.config.repo(repo_name)
    issue = obj(payload.get("issue"))
    comment = obj(payload.get("comment"))
    if "pull_request" not in issue or number(issue.get("number")) is None or not services.config.slack.notify_channel:
        return []
    m = COMMENT.search(text(comment.get("body")))
    if not m:
        return []
    login = text(obj(comment.get("user")).get("login"))
    if not re.fullmatch(r"[A-Za-z0-9-]{1,39}", login):
        return []
    if services.github is None or not login:
        return []
    if not await _can_write(services, repo.github, login):
        log.info("ignoring /backport from %s: no write access", login)
        return []
    releases = [r for r in m["releases"].split(",") if r and not branch_problem(r)][:5]
    pr_number = int(issue["number"])
    merged = bool(obj(issue.get("pull_request")).get("merged_at"))
    if not merged:
        if obj(issue.get("pull_request")) and text(issue.get("state")) == "closed":
            return []                           # closed without merging: nothing will ever be backported
        # Remembered, and run when the PR merges (as label-based backport tools do); said on the PR.
        if releases:
            await services.redis.hset(pending_key(repo.github, pr_number), mapping={r: login for r in releases})
            await services.redis.expire(pending_key(repo.github, pr_number), 180 * 86400)
        shown = ", ".join(f"`{r}`" for r in releases)
        return [_reply(repo.github, pr_number, f"Noted: I will backport #{pr_number} to {shown} when it merges.",
                       f"pending:{','.join(releases)}")] if releases else []
    out = []
    for r in releases:
        out += await _backport_unless_done(services, repo, pr_number, r, login)
    return out


async def _can_write(services, repo: str, login: str) -> bool:
    """Whether `login` may write to `repo`. A 4xx (no such user, no access) is a no; a 5xx is raised for
    GitHub's redelivery to try again."""
    if services.github is None:
        return False
    try:
        return await services.github.permission(repo, login) in WRITE
    except GitHubError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            return False
        raise
