"""`/summarize <pr>`: the key changes of a PR, with honest coverage. Anyone in the workspace may ask."""

from __future__ import annotations

from commands.base import Command, Invocation, PRRef, Usage, parse_pr
from core.queue import JobRequest
from jobs import summarize
from jobs.summarize import SummarizeParams


async def run(inv: Invocation, args: list[str]) -> JobRequest:
    if len(args) != 1:
        raise Usage("give exactly one pull request")
    ref = parse_pr(inv.config, args[0])
    if isinstance(ref, PRRef):
        params = SummarizeParams(repo=ref.repo, pr=ref.number)
    else:
        params = SummarizeParams(repo=ref.repo, base=ref.base, head=ref.head)
    what = params.label
    return JobRequest(kind=summarize.KIND, params=params, summary=f"summarize {what} ({ref.repo})",
                      requester=inv.user, channel=inv.channel, dest=inv.dest)


COMMAND = Command(
    name="summarize",
    usage="/summarize <pr>",
    summary="the key changes of a pull request, with what was and was not read",
    maintainers_only=False,
    run=run,
    kind=summarize.KIND,
    examples=("/summarize PR#1234", "/summarize valkey-io/valkey#1234", "/summarize 9.0..unstable"),
)
