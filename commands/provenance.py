"""`/provenance <pr>`: is any of this PR's code derived from a forbidden upstream?"""

from __future__ import annotations

from commands.base import Command, Invocation, Reply, Usage, parse_pr


async def run(inv: Invocation, args: list[str]) -> Reply:
    if len(args) != 1:
        raise Usage("give exactly one pull request")
    ref = parse_pr(inv.config, args[0])
    return Reply(f"/provenance is not built yet, so nothing was queued for {ref}. "
                 "The upstream index and the checks are still to come.")


COMMAND = Command(
    name="provenance",
    usage="/provenance <pr>",
    summary="check a pull request for code derived from a forbidden upstream",
    maintainers_only=True,
    run=run,
    examples=("/provenance PR#1234",),
)
