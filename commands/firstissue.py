"""`/firstissue @newcomer [--another]` hands out a curated issue (a job with a thread); the private pool is
managed with `add <issue> [note]`, `list`, `remove <issue>` and `link @user <github-login>`, and mentors with
`mentor add @user [capacity]`, `mentor remove @user` and `mentors`, which answer privately. Maintainers only,
except that anyone may link themselves."""

from __future__ import annotations

import re
import time

from commands.base import (
    Command,
    Invocation,
    Later,
    PRRef,
    Reply,
    Usage,
    parse_person,
    parse_pr,
)
from core import render
from core.github import GitHubError
from core.queue import JobRequest
from jobs import firstissue
from jobs.firstissue import FirstIssueParams

LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


async def run(inv: Invocation, args: list[str]) -> Reply | Later | JobRequest:
    if not args:
        raise Usage("name a newcomer, or use add, list, remove or link")
    sub = args[0].lower()
    services = inv.services
    self_link = sub == "link" and len(args) == 3 and parse_person(args[1])[0] == inv.user
    if not self_link and not inv.granted and not await services.auth.is_maintainer(inv.user):
        return Reply("Sorry, /firstissue is for maintainers, except `/firstissue link @you <github-login>` "
                     "to link your own GitHub login.")
    repo = inv.config.default_repo.github
    if sub == "add":
        if len(args) < 2:
            raise Usage("give the issue to add, e.g. add #1234 a small parser fix")
        ref = _issue(inv, args[1])
        return Later(f"Checking #{ref.number} on GitHub…", lambda: _add(inv, ref, " ".join(args[2:])[:500]))
    if sub == "remove":
        if len(args) != 2:
            raise Usage("give the issue to remove, e.g. remove #1234")
        ref = _issue(inv, args[1])
        hold = await firstissue.Pool(services.redis, ref.repo).remove(ref.number)
        if hold and hold.get("missing"):
            return Reply(f"#{ref.number} is not in the pool.")
        extra = (f" It was held by <@{hold['user']}>; their GitHub assignment stays until you change it."
                 if hold else "")
        return Reply(f"Removed #{ref.number} from the pool.{extra}")
    if sub == "list":
        if len(args) != 1:
            raise Usage("list takes nothing more")
        return Reply(await _list(inv, repo))
    if sub == "mentors":
        if len(args) != 1:
            raise Usage("mentors takes nothing more")
        return Reply(await _mentors(inv))
    if sub == "mentor":
        return Reply(await _mentor(inv, args[1:]))
    if sub == "link":
        if len(args) != 3:
            raise Usage("link takes a person and a GitHub login, e.g. link @newcomer octocat")
        user, name = parse_person(args[1])
        if not LOGIN.match(args[2]):
            raise Usage(f"{args[2][:40]!r} is not a GitHub login")
        return Later(f"Checking GitHub login {args[2]}…", lambda: _link(inv, user, name, args[2]))
    if len(args) > 2 or (len(args) == 2 and args[1] != "--another"):
        raise Usage("name exactly one newcomer (add --another to give a second issue)")
    user, name = parse_person(args[0])
    return JobRequest(kind=firstissue.KIND,
                      params=FirstIssueParams(repo=repo, user=user, name=name, another=len(args) == 2),
                      summary=f"first issue for <@{user}>" if user else f"first issue for @{name}",
                      requester=inv.user, channel=inv.channel, dest=inv.dest)


def _issue(inv: Invocation, text: str) -> PRRef:
    ref = parse_pr(inv.config, text, allow_range=False)
    assert isinstance(ref, PRRef)          # without ranges, a PR or Usage
    return ref


async def _add(inv: Invocation, ref: PRRef, note: str) -> str:
    gh = inv.services.github
    if gh is None:
        return "Adding issues needs GitHub credentials (GITHUB_TOKEN) to check them; nothing was added."
    try:
        issue = await gh.issue(ref.repo, ref.number)
    except GitHubError as exc:
        if exc.status == 404:
            return f"There is no issue #{ref.number} in {ref.repo}; nothing was added."
        raise
    if issue.get("pull_request"):
        return f"#{ref.number} is a pull request, not an issue; nothing was added."
    if issue.get("state") != "open":
        return f"#{ref.number} is closed; nothing was added."
    pool = firstissue.Pool(inv.services.redis, ref.repo)
    if not await pool.add(ref.number, note, inv.user, inv.services.clock()):
        return f"#{ref.number} is already in the pool."
    return f"Added #{ref.number} ({issue.get('title', '')}) to the private pool."


async def _link(inv: Invocation, user: str, name: str, login: str) -> str:
    """A maintainer's link is their confirmation. Anyone else proves the login is theirs: the bot gives them
    a code to show on GitHub (profile bio or a public gist), and links once it sees it there."""
    services = inv.services
    if not user:
        user = await services.chats[inv.dest].find_user(name) or ""
        if not user:
            return f"I cannot find @{name} in this workspace."
    if services.github is None:
        return "Linking needs GitHub credentials (GITHUB_TOKEN) to check the login; nothing was linked."
    repo = inv.config.default_repo.github
    if not await services.github.user_exists(repo, login):
        return f"There is no GitHub user {login}; nothing was linked."
    owner = await firstissue.login_owner(services.redis, login)
    maintainer = await services.auth.is_maintainer(inv.user)
    if owner and owner != user and not maintainer:
        return f"GitHub {login} is already linked to someone else; ask a maintainer if that is wrong."
    if not maintainer:
        if not await firstissue.proven(services.redis, services.github, repo, user, login):
            code = await firstissue.proof_code(services.redis, user, login)
            return (f"To show that GitHub {login} is yours, put `{code}` in your GitHub profile bio or in the "
                    f"description of a public gist, then run this command again within the hour. Nothing was "
                    f"linked yet.")
    await firstissue.link(services.redis, user, login)
    how = "confirmed by a maintainer" if maintainer else "proved on GitHub"
    return f"Linked <@{user}> to GitHub {login} ({how})."


async def _mentor(inv: Invocation, args: list[str]) -> str:
    """`mentor add @user [capacity]` · `mentor remove @user`: maintainers opt in (themselves or others)."""
    if not args or args[0].lower() not in ("add", "remove"):
        raise Usage("mentor add @user [capacity] or mentor remove @user")
    if len(args) < 2:
        raise Usage("name the mentor, e.g. mentor add @ada 2")
    user, name = parse_person(args[1])
    if not user:
        user = await inv.services.chats[inv.dest].find_user(name) or ""
        if not user:
            return f"I cannot find @{name} in this workspace."
    redis = inv.services.redis
    if args[0].lower() == "remove":
        if len(args) != 2:
            raise Usage("mentor remove takes one person")
        if not await firstissue.remove_mentor(redis, user):
            return f"<@{user}> is not a mentor."
        return f"<@{user}> is no longer a mentor; the newcomers they mentor keep them until their issue ends."
    capacity = 2
    if len(args) == 3:
        text = args[2]
        if not (text.isascii() and text.isdecimal() and 1 <= int(text) <= 20):
            raise Usage(f"{text[:20]!r} is not a capacity from 1 to 20")
        capacity = int(text)
    elif len(args) > 3:
        raise Usage("mentor add takes a person and at most a capacity")
    await firstissue.add_mentor(redis, user, capacity, inv.user)
    linked = await firstissue.linked_login(redis, user)
    hint = "" if linked else (f" Link their GitHub login so reviews can be requested: "
                              f"`/firstissue link <@{user}> <login>`.")
    return f"<@{user}> mentors up to {capacity} newcomer(s) at a time.{hint}"


async def _mentors(inv: Invocation) -> str:
    redis = inv.services.redis
    listed = await firstissue.mentors(redis)
    if not listed:
        return "No mentors yet. Maintainers opt in with `/firstissue mentor add @you [capacity]`."
    taken = await firstissue.mentees(redis, [r.github for r in inv.config.repos])
    lines = ["*Mentors* (handed out in turn, within their capacity)"]
    for user in sorted(listed):
        now = taken.get(user, [])
        who = ", ".join(f"<@{u}> on {repo}#{n}" for repo, n, u in now) or "nobody right now"
        lines.append(f"• <@{user}>: {len(now)}/{listed[user].get('capacity', 1)} — {who}")
    return "\n".join(lines)


async def _list(inv: Invocation, repo: str) -> str:
    entries = await firstissue.Pool(inv.services.redis, repo).entries()
    if not entries:
        return "The pool is empty. Add issues with `/firstissue add <issue> [note]`."
    now = inv.services.clock()
    lines = [f"*First-issue pool* ({repo}, private): {len(entries)} issue(s)"]
    for number, entry, hold in entries:
        note = f" — {entry['note']}" if entry.get("note") else ""
        if hold:
            days = (now - hold["since"]) / 86400
            since = time.strftime("%Y-%m-%d", time.gmtime(hold["since"]))
            state = (f"held by <@{hold['user']}> ({hold['login']}) since {since} ({days:.0f} day(s)), handed out "
                     f"by <@{hold['by']}>")
            if hold.get("last"):
                state += (f"; last activity {time.strftime('%Y-%m-%d', time.gmtime(hold['last']))} "
                          f"({render.inert(str(hold.get('last_what', '')))})")
            state += f"; mentor <@{hold['mentor']}>" if hold.get("mentor") else "; no mentor"
            if hold.get("pr"):
                state += f"; PR #{hold['pr']} open"
        else:
            state = "free"
        lines.append(f"• #{number}: {state}{note}")
    return "\n".join(lines)


COMMAND = Command(
    name="firstissue",
    usage="/firstissue @newcomer [--another] | add <issue> [note] | list | remove <issue> | link @user <github-login>"
          " | mentor add @user [capacity] | mentor remove @user | mentors",
    summary="hand a privately curated good-first issue to a named newcomer",
    maintainers_only=False,   # checked per subcommand: anyone may link themselves
    run=run,
    kind=firstissue.KIND,
    examples=("/firstissue @newcomer", "/firstissue add #1234 small parser fix", "/firstissue list"),
    who="maintainers; anyone may link their own login",
    subcommands=("add", "list", "remove", "link", "mentor", "mentors"),
)
