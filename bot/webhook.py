"""`POST /github/webhook`: verified (HMAC-SHA256 over the raw body), each delivery acted on once, and routed
to the triggers that live next to the jobs they start (jobs/backport_triggers.py, jobs/provenance/job.py,
jobs/firstissue.py). The web process verifies, authorises (a trigger asks GitHub whether the sender may write)
and enqueues; anything that talks to Slack or comments on GitHub is a job. Results go to `[slack]
notify_channel`.

A delivery is marked seen only once its jobs are queued, so a failure leaves GitHub's redelivery free to try
again; one older than `MAX_AGE_S` (by the event's own time) is ignored, so a replay after the seen-mark
expired does nothing. Both JSON and GitHub's default form encoding (`payload=<json>`) are accepted; the
signature covers the raw body either way."""

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
from core.payload import obj, text
from core.queue import JobRequest, QueueUnavailable, submit
from jobs import backport_triggers, firstissue, provenance

log = logging.getLogger(__name__)

MAX_AGE_S = 3 * 86400          # a delivery whose event is older than this is ignored
SEEN_TTL_S = MAX_AGE_S + 86400  # the seen-mark outlives the window: every replay meets one or the other
TRIGGERS = {
    "pull_request": (provenance.on_pull_request, firstissue.on_pull_request, backport_triggers.on_pull_request,
                     backport_triggers.on_backport_pr),
    "issue_comment": (backport_triggers.on_comment,),
    "push": (backport_triggers.on_push,),
}


def make_handler(services):
    """The aiohttp handler for this process's services."""

    async def handler(request: web.Request) -> web.Response:
        return await handle(services, request)

    return handler


async def handle(services, request: web.Request) -> web.Response:
    metrics = services.metrics
    body = await request.read()
    secret = services.config.env.github_webhook_secret
    if not verify_signature(secret, body, request.headers.get("X-Hub-Signature-256")):
        metrics.webhooks.labels(event="", outcome="bad-signature").inc()
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
        metrics.webhooks.labels(event=event if event in TRIGGERS else "other", outcome="stale").inc()
        return web.Response(status=200, text="stale delivery ignored")
    seen = _seen(request)
    try:
        # Claimed while we work (so a concurrent redelivery waits its turn), kept only once the jobs are queued.
        if not await services.redis.set(seen, "working", nx=True, ex=SEEN_TTL_S):
            metrics.webhooks.labels(event=event if event in TRIGGERS else "other", outcome="duplicate").inc()
            return web.Response(status=200, text="duplicate delivery ignored")
        requests = await route(services, event, payload)
        keys = []
        for req in requests:
            q = services.config.queue
            sub = await submit(services.queues[req.priority], services.redis, req, timeout_s=q.job_timeout_s,
                               heartbeat_s=q.heartbeat_s, retries=q.retries, ttl_days=q.audit_ttl_days)
            keys.append(sub.key)
            for key, value in req.after.items():
                await services.redis.set(key, value, ex=services.config.queue.ttl_s)
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
    metrics.webhooks.labels(event=event if event in TRIGGERS else "other", outcome="queued" if keys else "ignored").inc()
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


async def route(services, event: str, payload: dict) -> list[JobRequest]:
    """The jobs an event asks for, from the triggers of each job kind (nothing for an unconfigured repo)."""
    repo_name = text(obj(payload.get("repository")).get("full_name"))
    repo = services.config.repo(repo_name) if repo_name and "/" in repo_name else None
    if repo is None:
        return []
    if event == "issue_comment" and payload.get("action") != "created":
        return []
    out: list[JobRequest] = []
    for trigger in TRIGGERS.get(event, ()):
        out += await trigger(services, repo, payload)
    return out
