"""`/provenance <pr>`: is any of this PR's code derived from a forbidden upstream?"""

from __future__ import annotations

from commands.base import Command, Invocation, PRRef, Reply, Usage, parse_pr
from core.queue import JobRequest
from jobs import provenance
from jobs.provenance import ProvenanceParams


async def run(inv: Invocation, args: list[str]) -> Reply | JobRequest:
    if len(args) != 1:
        raise Usage("give exactly one pull request")
    ref = parse_pr(inv.config, args[0])
    if inv.config.provenance is None:
        return Reply("Provenance checks are not configured: add a [provenance] table to bot.toml "
                     "(upstream, tainted, allowed). Nothing was queued.")
    if isinstance(ref, PRRef):
        params = ProvenanceParams(repo=ref.repo, pr=ref.number)
    else:
        params = ProvenanceParams(repo=ref.repo, base=ref.base, head=ref.head)
    what = params.label
    return JobRequest(kind=provenance.KIND, params=params, summary=f"provenance of {what} ({ref.repo})",
                      requester=inv.user, channel=inv.channel, dest=inv.dest)


COMMAND = Command(
    name="provenance",
    usage="/provenance <pr | base..head>",
    summary="check a pull request for code derived from a forbidden upstream",
    maintainers_only=True,
    run=run,
    kind=provenance.KIND,
    examples=("/provenance PR#1234",),
)
