"""`/provenance <pr>`: is any of this PR's code derived from a forbidden upstream?"""

from __future__ import annotations

from commands.base import Command, Invocation, PRRef, Reply, Usage, parse_pr
from core.names import ascii_int
from core.queue import JobRequest
from jobs import provenance
from jobs.provenance import ProvenanceParams, SelftestParams


async def run(inv: Invocation, args: list[str]) -> Reply | JobRequest:
    if inv.config.provenance is None:
        return Reply("Provenance checks are not configured: add a [provenance] table to bot.toml "
                     "(upstream, tainted, allowed). Nothing was queued.")
    if args and args[0].lower() == "selftest":
        n = ascii_int(args[1], 1, 100) if len(args) == 2 else 10
        if len(args) > 2 or n is None:
            raise Usage("selftest takes at most one number: how many forbidden commits to copy (1-100)")
        repo = inv.config.default_repo.github
        return JobRequest(kind=provenance.SELFTEST, params=SelftestParams(repo=repo, n=n),
                          summary=f"provenance self-test: {n} forbidden commit(s) in 4 disguises ({repo})",
                          requester=inv.user, channel=inv.channel, dest=inv.dest)
    if len(args) != 1:
        raise Usage("give exactly one pull request")
    ref = parse_pr(inv.config, args[0])
    if isinstance(ref, PRRef):
        params = ProvenanceParams(repo=ref.repo, pr=ref.number)
    else:
        params = ProvenanceParams(repo=ref.repo, base=ref.base, head=ref.head)
    what = params.label
    return JobRequest(kind=provenance.KIND, params=params, summary=f"provenance of {what} ({ref.repo})",
                      requester=inv.user, channel=inv.channel, dest=inv.dest)


COMMAND = Command(
    name="provenance",
    usage="/provenance <pr | base..head> | selftest [n]",
    summary="check a pull request for code derived from a forbidden upstream",
    maintainers_only=True,
    run=run,
    kind=provenance.KIND,
    examples=("/provenance PR#1234", "/provenance selftest 20"),
    subcommands=("selftest",),
)
