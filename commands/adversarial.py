"""`/adversarial <pr> [attempts]`: an agent tries to crash the change or corrupt data; code judges."""

from __future__ import annotations

from commands.base import Command, Invocation, Reply, Usage, parse_pr

MAX_ATTEMPTS = 100_000


async def run(inv: Invocation, args: list[str]) -> Reply:
    if not 1 <= len(args) <= 2:
        raise Usage("give a pull request and, optionally, a number of attempts")
    ref = parse_pr(inv.config, args[0])
    if len(args) == 2 and (not args[1].isdigit() or not 1 <= int(args[1]) <= MAX_ATTEMPTS):
        raise Usage(f"attempts must be a whole number from 1 to {MAX_ATTEMPTS}")
    return Reply(f"/adversarial is not built yet, so nothing was queued for {ref}. "
                 "The sandboxed harness and its oracles are still to come.")


COMMAND = Command(
    name="adversarial",
    usage="/adversarial <pr> [attempts]",
    summary="let an agent try to crash a pull request's code or corrupt data; findings go to the security channel",
    maintainers_only=True,
    run=run,
    examples=("/adversarial PR#1234", "/adversarial PR#1234 500"),
)
