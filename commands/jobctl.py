"""The buttons on an escalation (and `/retry`, `/dismiss`, `/draft`, `/job` in the console).

Retry runs the job again in the same thread, starting from the first stage not yet done; Dismiss closes it;
"Open as draft PR with conflicts" (a backport's conflict) starts the same backport as a draft PR holding the
markers. Each takes effect once, however often the button is clicked, and only for maintainers."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from commands.base import in_background
from core import homes, render
from core.audit import Audit, signed_path
from core.kinds import BadParams
from core.queue import JobRequest, QueueUnavailable, job_info, requeue, set_info, submit
from jobs import backport, home
from jobs.runtime import JobThread

log = logging.getLogger(__name__)


def _stale(key: str, info: dict, run: str | None) -> str:
    """Why a button of an earlier run no longer acts ('' when it does)."""
    if run is not None and run != info.get("run", "1"):
        return f"Job `{key}` has run again since this message (run {info.get('run')}); use the latest one."
    return ""


async def retry(services, key: str, user: str, run: str | None = None) -> str:
    """Run the job again from its first stage not yet done. `run`: the run whose escalation was clicked
    (buttons), None for the current one (console). A run is retried once, however often it is clicked."""
    if not await services.auth.is_maintainer(user):
        return "Sorry, only maintainers can retry a job."
    info = await job_info(services.redis, key)
    if not info:
        return f"No job `{key}` is known (jobs are kept {services.config.queue.audit_ttl_days} days)."
    if info.get("status") == "dismissed":
        return f"Job `{key}` was dismissed; ask for it again with its command."
    if stale := _stale(key, info, run):
        return stale
    claim = f"bot:job:{key}:retried:{info.get('run', '1')}"
    if not await services.redis.set(claim, user, nx=True, ex=services.config.queue.ttl_s):
        return f"Job `{key}` was already retried."
    q = services.config.queue
    if not await requeue(services.queue_named(info.get("queue", "")), services.redis, key, timeout_s=q.job_timeout_s,
                         heartbeat_s=q.heartbeat_s, retries=q.retries, ttl_days=q.audit_ttl_days):
        await services.redis.delete(claim)
        return f"Job `{key}` is already queued or running."
    await homes.settled(services.redis, key)
    thread = JobThread(services.chats[info.get("dest", "slack")], services.redis, key)
    await thread.reply(f":repeat: <@{user}> asked for a retry; starting from the first stage not yet done.")
    await thread.status("queued", "retry")
    return f"Retrying job `{key}`."


async def dismiss(services, key: str, user: str, run: str | None = None) -> str:
    if not await services.auth.is_maintainer(user):
        return "Sorry, only maintainers can dismiss a job."
    info = await job_info(services.redis, key)
    if not info:
        return f"No job `{key}` is known (jobs are kept {services.config.queue.audit_ttl_days} days)."
    if stale := _stale(key, info, run):
        return stale
    existing = await services.queue_named(info.get("queue", "")).job(key)
    if existing is not None and existing.status in ("queued", "active"):
        return f"Job `{key}` is running; wait for it to stop before dismissing it."
    if not await services.redis.set(f"bot:job:{key}:dismissed:{info.get('run', '1')}", user, nx=True,
                                    ex=services.config.queue.ttl_s):
        return f"Job `{key}` was already dismissed."
    await homes.settled(services.redis, key)
    thread = JobThread(services.chats[info.get("dest", "slack")], services.redis, key)
    await thread.reply(f":no_entry_sign: Dismissed by <@{user}>. Nothing more will happen in this thread.")
    await thread.status("dismissed", "by a maintainer (see the thread)")
    await set_info(services.redis, key, dismissed_by=user)
    return f"Dismissed job `{key}`."


async def draft_job(services, key: str, user: str, run: str | None = None) -> tuple[str, str]:
    """A backport that escalated on a conflict, started again as a draft PR with the markers committed (its own
    job and thread; the escalation's thread says so). Returns the answer and the new job's key ('' if none)."""
    if not await services.auth.is_maintainer(user):
        return "Sorry, only maintainers can open a draft backport PR.", ""
    info = await job_info(services.redis, key)
    if not info or info.get("kind") != backport.KIND.name:
        return f"No backport job `{key}` is known.", ""
    if stale := _stale(key, info, run):
        return stale, ""
    try:
        params = backport.BackportParams.load(json.loads(info.get("params") or "{}"))
    except (BadParams, ValueError) as exc:
        return f"Job `{key}` can't be repeated as a draft: {exc}", ""
    if not await services.redis.set(f"bot:job:{key}:drafted:{info.get('run', '1')}", user, nx=True,
                                    ex=services.config.queue.ttl_s):
        return f"A draft PR was already asked for from job `{key}`.", ""
    p = replace(params, draft=True)
    req = JobRequest(kind=backport.KIND, params=p, requester=user, channel=info.get("channel", ""),
                     dest=info.get("dest", "slack"),
                     summary=f"draft backport {' '.join(p.refs)} → {p.release} ({p.repo}) with its conflicts")
    q = services.config.queue
    try:
        sub = await submit(services.queue, services.redis, req, timeout_s=q.job_timeout_s, heartbeat_s=q.heartbeat_s,
                           retries=q.retries, ttl_days=q.audit_ttl_days)
    except QueueUnavailable:
        await services.redis.delete(f"bot:job:{key}:drafted:{info.get('run', '1')}")
        return "The job queue is unavailable right now; try again in a minute.", ""
    thread = JobThread(services.chats[info.get("dest", "slack")], services.redis, key)
    await thread.reply(f":construction: <@{user}> chose a draft PR with the conflicts: job `{sub.key}`.")
    return f"Opening a draft PR with the conflicts as job `{sub.key}`.", sub.key


async def draft(services, key: str, user: str, run: str | None = None) -> str:
    return (await draft_job(services, key, user, run))[0]


async def audit_link(services, key: str, user: str, channel: str) -> str:
    """A signed, expiring link to the job's audit page, for a maintainer, asked from the job's own thread. An
    adversarial run's log holds security findings: its link is given only in the security channel."""
    if not await services.auth.is_maintainer(user):
        return "Sorry, audit logs are for maintainers."
    info = await job_info(services.redis, key)
    if not info:
        return f"No job `{key}` is known (jobs are kept {services.config.queue.audit_ttl_days} days)."
    security = services.config.slack.security_channel
    if info.get("kind") == "adversarial":
        if channel != security or not security:
            return ("This run's audit log holds security findings: open it from the finding in the security "
                    "channel.")
    elif channel != info.get("channel"):
        return "Open the audit log from the job's own thread."
    cfg = services.config
    path = await signed_path(services.redis, key, cfg.web.link_ttl_s)
    minutes = cfg.web.link_ttl_s // 60
    return (f"<{cfg.web.base(cfg.env.port)}{path}|Audit log of job `{key}`> (this link is yours; it works for "
            f"{minutes} minutes).")


async def describe(services, key: str) -> str:
    """A job's status and the tail of its audit log (console `/job <id>`)."""
    info = await job_info(services.redis, key)
    if not info:
        return f"No job `{key}` is known (jobs are kept {services.config.queue.audit_ttl_days} days)."
    lines = [f"job {key}: {info.get('summary')} — {info.get('status')} {info.get('detail', '')}".rstrip()]
    cfg = services.config
    lines.append(f"  audit page: {cfg.web.base(cfg.env.port)}"
                 f"{await signed_path(services.redis, key, cfg.web.link_ttl_s)}")
    for e in (await Audit(services.redis, key).entries(-25, -1)):
        lines.append(f"  {e['stage']:>10} {e['kind']:<12} {e['text'][:200]}")
    return "\n".join(lines)


def register(app, services) -> None:
    chat = services.chats["slack"]

    @app.action("job_retry")
    async def on_retry(ack, body):
        await ack()
        in_background(_button(services, chat, body, retry))

    @app.action("job_dismiss")
    async def on_dismiss(ack, body):
        await ack()
        in_background(_button(services, chat, body, dismiss))

    @app.event("app_home_opened")
    async def on_home(ack, event):
        await ack()
        if event.get("tab", "home") == "home" and event.get("user"):
            in_background(home.opened(services, event["user"]))

    @app.action("home_open_thread")           # a link button: Slack opens the URL, we only acknowledge
    async def on_open_thread(ack):
        await ack()

    @app.action(render.AUDIT_ACTION)
    async def on_audit(ack, body):
        await ack()

        async def answer() -> None:
            user, channel = body["user"]["id"], body.get("channel", {}).get("id", "")
            key = str(body["actions"][0].get("value", "")).partition(":")[0]
            try:
                await chat.ephemeral(channel, user, await audit_link(services, key, user, channel))
            except Exception as exc:
                log.warning("could not answer the audit button: %s", exc)
        in_background(answer())

    @app.action(backport.DRAFT_ACTION)
    async def on_draft(ack, body):
        await ack()
        in_background(_button(services, chat, body, draft))


async def _button(services, chat, body, action) -> None:
    key, _, run = str(body["actions"][0].get("value", "")).partition(":")
    user = body["user"]["id"]
    channel = body.get("channel", {}).get("id", "")
    text = await action(services, key, user, run or None)
    if (body.get("container") or {}).get("type") == "view":       # pressed in the App Home: show it there
        try:
            await home.publish(services, user)
        except Exception as exc:
            log.warning("could not refresh the Home of %s: %s", user, exc)
        return
    message = body.get("message") or {}
    if text.startswith(("Retrying", "Dismissed job", "Opening a draft")) and message.get("ts"):
        # Take the buttons off the escalation so the thread shows what was decided.
        blocks = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
        blocks.append(render.section(f"_{text.rstrip('.')} — <@{user}>_"))
        try:
            await chat.update(channel, message["ts"], message.get("text", text), blocks)
        except Exception as exc:
            log.warning("could not update the escalation message: %s", exc)
    else:
        try:
            await chat.ephemeral(channel, user, text)
        except Exception as exc:
            log.warning("could not answer the button: %s", exc)
