"""`/adversarial <pr> [attempts]`: an agent tries to crash the change or corrupt data; code judges."""

from __future__ import annotations

from commands.base import Command, Invocation, PRRef, Reply, Usage, parse_pr
from core.names import ascii_int
from core.queue import JobRequest
from jobs import adversarial
from jobs.adversarial import AdversarialParams

MAX_ATTEMPTS = 100_000


async def run(inv: Invocation, args: list[str]) -> Reply | JobRequest:
    if not 1 <= len(args) <= 2:
        raise Usage("give a pull request and, optionally, a number of attempts")
    ref = parse_pr(inv.config, args[0])
    attempts = ascii_int(args[1], 1, MAX_ATTEMPTS) if len(args) == 2 else None
    if len(args) == 2 and attempts is None:
        raise Usage(f"attempts must be a whole number from 1 to {MAX_ATTEMPTS}")
    repo = inv.config.repo(ref.repo)
    if repo is None or (repo.adversarial or inv.config.adversarial) is None:
        return Reply("Adversarial runs are not configured: add an [adversarial] table (build, start, ready, "
                     "invariants) to bot.toml. Nothing was queued.")
    if not inv.config.slack.security_channel:
        return Reply("Adversarial runs need `[slack] security_channel` (findings may be embargoed and go only "
                     "there). Nothing was queued.")
    if isinstance(ref, PRRef):
        params = AdversarialParams(repo=ref.repo, pr=ref.number, attempts=attempts or 0)
    else:
        params = AdversarialParams(repo=ref.repo, base=ref.base, head=ref.head, attempts=attempts or 0)
    what = params.label
    return JobRequest(kind=adversarial.KIND, params=params, summary=f"adversarial run on {what} ({ref.repo})",
                      requester=inv.user, channel=inv.channel, dest=inv.dest)


COMMAND = Command(
    name="adversarial",
    usage="/adversarial <pr> [attempts]",
    summary="let an agent try to crash a pull request's code or corrupt data; findings go to the security channel",
    maintainers_only=True,
    run=run,
    kind=adversarial.KIND,
    examples=("/adversarial PR#1234", "/adversarial PR#1234 500"),
)
