"""`POST /github/webhook`: verified (HMAC-SHA256 over the raw body), each delivery acted on once, and routed
to jobs on the same queue the slash commands use. Results go to `[slack] notify_channel`.

Backport triggers: a `backport <release>` label on a merged PR, or a `/backport <release>` comment on a merged
PR by someone with write access."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re

from aiohttp import web
from redis.exceptions import RedisError

from bot.github import GitHubError, verify_signature
from bot.names import branch_problem
from jobs.queue import JobRequest, QueueUnavailable, submit

log = logging.getLogger(__name__)

LABEL = re.compile(r"^backport[ :/-]+(?P<release>[A-Za-z0-9._/-]{1,100})$", re.I)
COMMENT = re.compile(r"^/backport\s+(?P<releases>[A-Za-z0-9._/,-]{1,200})\s*$", re.I | re.M)
WRITE = {"admin", "maintain", "write"}


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
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        return web.Response(status=400, text="body is not a JSON object")
    try:
        if not await services.redis.set(_seen(request), "1", nx=True, ex=7 * 86400):
            metrics.inc("bot_webhooks_total", "GitHub webhook deliveries", outcome="duplicate")
            return web.Response(status=200, text="duplicate delivery ignored")
        requests = await route(services, event, payload)
        keys = []
        for req in requests:
            q = services.config.queue
            sub = await submit(services.queue, services.redis, req, timeout_s=q.job_timeout_s,
                               heartbeat_s=q.heartbeat_s, retries=q.retries, ttl_days=q.audit_ttl_days)
            keys.append(sub.key)
    except (QueueUnavailable, RedisError, OSError) as exc:
        await _forget(services, request)
        log.warning("webhook %s not queued: %s", delivery, exc)
        return web.Response(status=503, text="queue unavailable; redeliver later")
    except GitHubError as exc:
        await _forget(services, request)
        return web.Response(status=502, text=f"GitHub lookup failed: {exc}")
    metrics.inc("bot_webhooks_total", "GitHub webhook deliveries", outcome="queued" if keys else "ignored",
                event=event)
    return web.json_response({"queued": keys})


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
        if payload.get("action") == "opened":
            from jobs import firstissue

            await firstissue.pr_opened(services, repo.github, pr)
        if payload.get("action") in ("opened", "synchronize", "reopened") and pr.get("number") \
                and "provenance" in services.config.sections and services.config.slack.notify_channel:
            head = text(obj(pr.get("head")).get("sha"))
            out.append(JobRequest(kind="provenance", params={"repo": repo.github, "pr": int(pr["number"]),
                                                             "head": head, "quiet": True},
                                  summary=f"provenance of #{pr['number']} ({repo.github})",
                                  channel=services.config.slack.notify_channel, dest="slack"))
        return out + _from_label(services, repo.github, payload)
    if event == "issue_comment" and payload.get("action") == "created":
        return await _from_comment(services, repo.github, payload)
    return []


def _backport(services, repo: str, number: int, release: str, who: str) -> JobRequest:
    return JobRequest(kind="backport", params={"repo": repo, "release": release, "refs": [f"#{number}"]},
                      summary=f"backport #{number} → {release} ({repo}), asked on GitHub by {who}",
                      channel=services.config.slack.notify_channel, dest="slack",
                      origin={"github": who, "pr": number})


def _from_label(services, repo: str, payload: dict) -> list[JobRequest]:
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
    who = text(obj(payload.get("sender")).get("login")) or "someone"
    out = []
    for name in labels:
        m = LABEL.match(name)
        if m and services.config.slack.notify_channel:
            if branch_problem(m["release"]):
                log.info("ignoring label %r on #%s: the release %s", name, pr.get("number"),
                         branch_problem(m["release"]))
                continue
            out.append(_backport(services, repo, int(pr["number"]), m["release"], who))
    return out


async def _from_comment(services, repo: str, payload: dict) -> list[JobRequest]:
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
    if await services.github.permission(repo, login) not in WRITE:
        log.info("ignoring /backport from %s: no write access", login)
        return []
    releases = [r for r in m["releases"].split(",") if r and not branch_problem(r)]
    return [_backport(services, repo, int(issue["number"]), r, login) for r in releases[:5]]
