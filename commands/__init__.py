"""The slash commands, registered in one place.

`dispatch` is the one path every command takes, from Slack or the console: help → authorise → parse →
enqueue → a one-line ephemeral answer. `register(app, services)` wires it, and the job buttons, into Bolt.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from commands import adversarial, backport, firstissue, jobctl, modals, provenance, summarize
from commands.base import Command, Invocation, Later, Modal, Reply, Usage, in_background, shown
from core.auth import describe_rule
from core.queue import JobRequest, QueueUnavailable, Submitted, submit
from core.quotas import new_token
from jobs.kinds import KINDS
from jobs.runtime import JobThread

log = logging.getLogger(__name__)

COMMANDS: dict[str, Command] = {
    c.name: c for c in (backport.COMMAND, summarize.COMMAND, firstissue.COMMAND, provenance.COMMAND,
                        adversarial.COMMAND)
}
# Each job kind that names a command has its parser here, and each parser builds that kind's parameters.
_MISSING = sorted(set(KINDS.commands()) ^ {c.kind.command for c in COMMANDS.values() if c.kind is not None})
if _MISSING:
    raise ImportError(f"job kinds and commands disagree about: {', '.join(_MISSING)}")
SUBMIT_TIMEOUT_S = 2.0  # for all of a command's jobs: Slack wants an answer within 3 s


@dataclass
class Outcome:
    text: str
    submitted: list[Submitted] = field(default_factory=list)
    ok: bool = True
    later: Callable[[], Awaitable[str]] | None = None   # work whose result is a second private answer
    modal: dict | None = None                            # a form to open instead of an answer

    @property
    def created(self) -> list[Submitted]:
        return [s for s in self.submitted if s.created]


def help_text() -> str:
    lines = ["*Commands* (each also answers `help`):"] + [f"• {c.help()}" for c in COMMANDS.values()]
    return "\n".join(lines)


def split_args(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


async def dispatch(inv: Invocation) -> Outcome:
    services = inv.services
    name = inv.command.lstrip("/").lower()
    if name == "help":
        return Outcome(help_text())
    command = COMMANDS.get(name)
    if command is None:
        return Outcome(f"Unknown command {shown('/' + name)}. Try /help.", ok=False)
    args = split_args(inv.text.strip())
    if args and args[0].lower() in ("help", "-h", "--help"):
        return Outcome(command.help())
    outcome = "ok"
    try:
        maintainer = await _maintainer(services, inv.user)
        rule_name, rule = access_rule(services.config, command, args)
        if rule is not None and rule.who:
            allowed = await services.auth.allows(inv.user, rule.who, maintainer)
            inv.granted = allowed
        else:
            allowed = maintainer or not command.maintainers_only
        if not allowed:
            outcome = "refused"
            if rule is not None and rule.who:
                return Outcome(f"Sorry, /{rule_name} may be run by {describe_rule(rule.who, rule.channels)} "
                               f"(`[access.{rule_name}]`). `/{name} help` says what it does.", ok=False)
            return Outcome(f"Sorry, /{name} is for maintainers only. Ask one of them if you need it done; "
                           f"`/{name} help` says what it does.", ok=False)
        if rule is not None and rule.channels and inv.dest != "console" and inv.channel not in rule.channels:
            outcome = "refused"
            return Outcome(f"Sorry, /{rule_name} runs only in " + " or ".join(f"<#{c}>" for c in rule.channels)
                           + f" (`[access.{rule_name}]`).", ok=False)
        try:
            result = await command.run(inv, args)
        except Usage as exc:
            outcome = "usage"
            return Outcome(f"{exc}. Usage: {command.usage}", ok=False)
        if isinstance(result, Reply):
            return Outcome(result.text)
        if isinstance(result, Later):
            return Outcome(result.text, later=result.work)
        if isinstance(result, Modal):
            return Outcome("", modal=result.view)
        requests = result if isinstance(result, list) else [result]
        for r in requests:
            r.response_url = inv.response_url
            if not maintainer:      # an outsider's job waits in its own queue: never ahead of a maintainer's
                r.priority = "low"
        try:
            async with asyncio.timeout(SUBMIT_TIMEOUT_S):       # all of them, within Slack's 3 s
                token = new_token()
                counted = inv.dest != "console" and services.quotas.counts(maintainer)
                if counted:
                    refusal = await services.quotas.admit(inv.user, inv.channel, len(requests), maintainer=maintainer,
                                                          anyone_command=not command.maintainers_only, token=token)
                    if refusal:
                        outcome = "over-quota"
                        return Outcome(f"Not queued: {refusal}.", ok=False)
                submitted = []
                try:
                    for r in requests:
                        submitted.append(await _submit(services, r, inv.nonce))
                finally:
                    if counted:                 # the held places become the jobs really queued (or are freed)
                        await services.quotas.opened(inv.user, inv.channel, [s.key for s in submitted if s.created],
                                                     pending=token, held=len(requests))
        except (QueueUnavailable, TimeoutError, RedisError, OSError):
            outcome = "queue-down"
            return Outcome("The job queue is unavailable right now, so nothing was queued. "
                           "Please try again in a minute.", ok=False)
        if any(sub.replayed for sub in submitted):
            outcome = "replayed"
            return Outcome("This exact request was received before (a replay?), so nothing was queued again.",
                           ok=False)
        return Outcome(await _ack_text(services, inv, requests, submitted), submitted)
    finally:
        services.metrics.commands.labels(command=name if name in COMMANDS or name == "help" else "unknown",
                                         outcome=outcome).inc()


def access_rule(config, command: Command, args: list[str]):
    """The `[access]` rule that governs this invocation: the subcommand's, else the command's (None: the
    command's own default)."""
    if args and args[0].lower() in command.subcommands:
        name = f"{command.name} {args[0].lower()}"
        if name in config.access:
            return name, config.access[name]
    return command.name, config.access.get(command.name)


async def _maintainer(services, user: str) -> bool:
    try:
        async with asyncio.timeout(1.5):      # a scope, not a task per call as wait_for makes
            return await services.auth.is_maintainer(user)
    except TimeoutError:
        return False


async def _submit(services, req: JobRequest, nonce: str = "") -> Submitted:
    q = services.config.queue
    return await submit(services.queues[req.priority], services.redis, req, timeout_s=q.job_timeout_s,
                        heartbeat_s=q.heartbeat_s, retries=q.retries, ttl_days=q.audit_ttl_days, nonce=nonce)


async def _ack_text(services, inv: Invocation, requests: list[JobRequest], submitted: list[Submitted]) -> str:
    lines = []
    for req, sub in zip(requests, submitted):
        if sub.created:
            lines.append(f"Queued job `{sub.key}`: {req.summary}. Follow it in the thread I am starting here.")
            continue
        where = f"in <#{sub.info['channel']}>" if sub.info.get("channel") else ""
        chat = services.chats.get(sub.info.get("dest", inv.dest))
        if sub.info.get("thread_ts") and chat is not None:
            try:
                where = await asyncio.wait_for(chat.permalink(sub.info["channel"], sub.info["thread_ts"]), 0.8)
            except (TimeoutError, Exception):
                pass
        lines.append(f"Already in progress as job `{sub.key}` {where} — not starting another.".replace("  ", " "))
    return "\n".join(lines)


async def start_threads(services, chat, outcome: Outcome) -> None:
    """Post each new job's parent message now (the console does, to print it right under the command; in Slack
    a worker's announcer does it, and the claim keeps it to one post either way)."""
    for sub in outcome.created:
        await JobThread(chat, services.redis, sub.key, info=sub.info).parent_ts()


async def finish_later(outcome: Outcome) -> str:
    """Run the work a command deferred past its ack; any failure becomes a plain answer."""
    assert outcome.later is not None
    try:
        return await outcome.later()
    except Exception as exc:
        log.warning("deferred command work failed: %s", exc)
        return f"That did not work: {str(exc)[:300]}"


def register(app, services) -> None:
    """Wire every command and the job buttons into a Bolt AsyncApp: one listener for all the commands (Bolt
    tries each listener's matcher on every request, so one matcher is cheaper than one per command)."""
    names = "|".join(re.escape(n) for n in ["help", *COMMANDS])
    app.command(re.compile(rf"^/({names})$"))(_listener(services))
    jobctl.register(app, services)
    modals.register(app, services, dispatch)
    # Anything else Slack sends (events we did not subscribe to, others' buttons, shortcuts) is acknowledged
    # quietly: Bolt would answer 404 with a warning, Slack would retry, and could disable the subscription.
    anything = re.compile(".*")

    async def quietly(ack, body):
        log.debug("ignored Slack request of type %s", body.get("type") if isinstance(body, dict) else "?")
        await ack()

    for register_on in (app.action, app.view, app.shortcut, app.options):
        register_on(anything)(quietly)
    app.event(anything)(quietly)


async def _open_modal(services, trigger_id: str, view: dict) -> None:
    try:
        await services.chats["slack"].open_view(trigger_id, view)
    except Exception as exc:
        log.warning("could not open the form: %s", exc)


def _listener(services):
    async def listener(ack, command, respond, request):
        started = time.perf_counter()
        user, channel = command.get("user_id") or "", command.get("channel_id") or ""
        if not user or not channel:                     # Slack always sends both; answer plainly if not
            await ack(text="This command arrived without a user or a channel, so nothing was done.")
            return
        url = command.get("response_url") or ""
        inv = Invocation(command=command["command"][1:], text=command.get("text") or "", user=user,
                         channel=channel, dest="slack", services=services,
                         nonce=request.headers.get("x-slack-signature", [""])[0],
                         response_url=url if url.startswith(("https://", "http://")) else "",
                         trigger_id=str(command.get("trigger_id") or ""))
        outcome = await dispatch(inv)
        if outcome.modal is not None:
            await ack()
            in_background(_open_modal(services, inv.trigger_id, outcome.modal))
            return
        await ack(text=outcome.text, response_type="ephemeral")
        name = inv.command.lower()
        services.metrics.ack_seconds.labels(command=name if name in COMMANDS or name == "help" else "unknown") \
            .observe(time.perf_counter() - started)
        if outcome.later is not None:
            async def answer_later():
                await respond(text=await finish_later(outcome), response_type="ephemeral")
            in_background(answer_later())
        # A worker posts each new job's parent message (jobs.worker.announce), not this process.

    return listener
