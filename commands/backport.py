"""`/backport <release>[,<release>...] <ref> [<ref>...]`: one backport job per release, newest release first.
`/backport status [<release>]`: what each release still needs. `/backport sweep [<release>]`: the sweep, now.

A ref is a commit SHA (7-40 hex) or a merged PR (PR#1234, #1234, owner/repo#1234, its URL). Whether the
release, the commits and the PR exist is the job's first stage; here we only check the shape."""

from __future__ import annotations

from commands.base import (
    Command,
    Invocation,
    Modal,
    PRRef,
    Usage,
    parse_commit_or_pr,
    parse_releases,
    shown,
)
from core.names import branch_problem
from core.queue import JobRequest
from jobs import backport, backport_sweep
from jobs.backport import BackportParams

MAX_REFS = 20


def release_order(name: str) -> tuple:
    """Newest first: 9.1 before 9.0 before 8.1; names that are not versions after those."""
    parts = name.split(".")
    if all(p.isascii() and p.isdecimal() for p in parts):
        return (0, [-int(p) for p in parts])
    return (1, name)


def _release_arg(inv: Invocation, args: list[str], what: str) -> str:
    if len(args) > 2:
        raise Usage(f"`/backport {what}` takes at most one release")
    release = args[1] if len(args) == 2 else ""
    if release and branch_problem(release):
        raise Usage(f"{shown(release)} is not a release name ({branch_problem(release)})")
    if not release and not inv.config.default_repo.releases:
        raise Usage("no releases are configured; name one")
    return release


BACKPORT_MODAL = "backport_modal"


def backport_view(config, channel: str) -> dict:
    """The /backport form: the default repo's releases (newest first), and the refs."""
    releases = sorted(config.default_repo.releases, key=release_order)[:100]
    options = [{"text": {"type": "plain_text", "text": f"{r} ({config.default_repo.releases[r]})"[:75]},
                "value": r} for r in releases]
    release_block: dict = {"type": "input", "block_id": "releases", "label": {"type": "plain_text",
                                                                             "text": "Releases"}}
    if options:
        release_block["element"] = {"type": "multi_static_select", "action_id": "releases", "options": options,
                                    "placeholder": {"type": "plain_text", "text": "Choose one or more"}}
    else:
        release_block["element"] = {"type": "plain_text_input", "action_id": "releases",
                                    "placeholder": {"type": "plain_text", "text": "a release branch, e.g. 9.1"}}
    return {
        "type": "modal", "callback_id": BACKPORT_MODAL, "private_metadata": channel,
        "title": {"type": "plain_text", "text": "Backport"},
        "submit": {"type": "plain_text", "text": "Backport"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            release_block,
            {"type": "input", "block_id": "refs", "label": {"type": "plain_text", "text": "Commits or merged PRs"},
             "element": {"type": "plain_text_input", "action_id": "refs", "max_length": 1000,
                         "placeholder": {"type": "plain_text", "text": "PR#1234 or abc1234 def5678"}},
             "hint": {"type": "plain_text", "text": "Separated by spaces; all from the same repository."}},
        ],
    }


async def run(inv: Invocation, args: list[str]) -> list[JobRequest] | Modal:
    if not args and inv.trigger_id and inv.dest == "slack":
        return Modal(backport_view(inv.config, inv.channel))
    if args and args[0].lower() == "status":
        release = _release_arg(inv, args, "status")
        name = inv.config.default_repo.github
        return [JobRequest(kind=backport_sweep.STATUS, params=backport_sweep.StatusParams(repo=name, release=release),
                           summary=f"backport status of {name}" + (f" → {release}" if release else ""),
                           requester=inv.user, channel=inv.channel, dest=inv.dest)]
    if args and args[0].lower() == "sweep":
        release = _release_arg(inv, args, "sweep")
        return [backport_sweep.sweep_request(inv.services, inv.config.default_repo, at="by hand",
                                             release=release, requester=inv.user, channel=inv.channel,
                                             dest=inv.dest)]
    if len(args) < 2:
        raise Usage("give a release and at least one commit or PR")
    releases = sorted(parse_releases(args[0]), key=release_order)
    refs = [parse_commit_or_pr(inv.config, a) for a in args[1:]]
    if len(refs) > MAX_REFS:
        raise Usage(f"at most {MAX_REFS} refs in one backport")
    repos = {r.repo for r in refs if isinstance(r, PRRef)} or {inv.config.default_repo.github}
    if len(repos) > 1:
        raise Usage("all PRs in one backport must come from the same repository")
    repo = repos.pop()
    ref_texts = [f"#{r.number}" if isinstance(r, PRRef) else r for r in refs]
    if len(set(ref_texts)) != len(ref_texts):
        raise Usage(f"{shown(' '.join(ref_texts))} names the same ref twice")
    shown_refs = " ".join(r if r.startswith("#") else r[:10] for r in ref_texts)
    return [
        JobRequest(kind=backport.KIND, params=BackportParams(repo=repo, release=release, refs=tuple(ref_texts)),
                   summary=f"backport {shown_refs} → {release} ({repo})", requester=inv.user,
                   channel=inv.channel, dest=inv.dest)
        for release in releases
    ]


COMMAND = Command(
    name="backport",
    usage="/backport <release>[,<release>...] <ref> [<ref>...] · /backport status [<release>] · "
          "/backport sweep [<release>]",
    summary="cherry-pick commits or a merged PR onto release branches, test, and open a backport PR",
    maintainers_only=True,
    run=run,
    kind=backport.KIND,
    examples=("/backport 9.1 abc1234", "/backport 9.1,8.1 PR#1234", "/backport status 8.1"),
    subcommands=("status", "sweep"),
)
