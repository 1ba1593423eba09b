"""`/firstissue @newcomer` and the private pool: `add <issue> [note]`, `list`, `remove <issue>`,
`link @user <github-login>`."""

from __future__ import annotations

import re

from commands.base import Command, Invocation, Reply, Usage, parse_person, parse_pr

LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


async def run(inv: Invocation, args: list[str]) -> Reply:
    if not args:
        raise Usage("name a newcomer, or use add, list, remove or link")
    sub = args[0].lower()
    if sub == "add":
        if len(args) < 2:
            raise Usage("give the issue to add, e.g. add #1234 a small parser fix")
        parse_pr(inv.config, args[1], allow_range=False)
    elif sub == "remove":
        if len(args) != 2:
            raise Usage("give the issue to remove, e.g. remove #1234")
        parse_pr(inv.config, args[1], allow_range=False)
    elif sub == "link":
        if len(args) != 3:
            raise Usage("link takes a person and a GitHub login, e.g. link @newcomer octocat")
        parse_person(args[1])
        if not LOGIN.match(args[2]):
            raise Usage("that is not a GitHub login")
    elif sub == "list":
        if len(args) != 1:
            raise Usage("list takes nothing more")
    else:
        if len(args) != 1:
            raise Usage("name exactly one newcomer")
        parse_person(args[0])
    return Reply("/firstissue is not built yet: the private pool and hand-outs are still to come. "
                 "Nothing was stored or assigned.")


COMMAND = Command(
    name="firstissue",
    usage="/firstissue @newcomer | add <issue> [note] | list | remove <issue> | link @user <github-login>",
    summary="hand a privately curated good-first issue to a named newcomer",
    maintainers_only=True,
    run=run,
    examples=("/firstissue @newcomer", "/firstissue add #1234 small parser fix", "/firstissue list"),
)
