"""`/summarize <pr>`: the key changes of a PR, with honest coverage. Anyone in the workspace may ask."""

from __future__ import annotations

from commands.base import Command, Invocation, Reply, Usage, parse_pr


async def run(inv: Invocation, args: list[str]) -> Reply:
    if len(args) != 1:
        raise Usage("give exactly one pull request")
    ref = parse_pr(inv.config, args[0])
    return Reply(f"/summarize is not built yet, so nothing was queued for {ref}. "
                 "The job that reads the diff and writes the summary is still to come.")


COMMAND = Command(
    name="summarize",
    usage="/summarize <pr>",
    summary="the key changes of a pull request, with what was and was not read",
    maintainers_only=False,
    run=run,
    examples=("/summarize PR#1234", "/summarize valkey-io/valkey#1234", "/summarize 9.0..unstable"),
)
