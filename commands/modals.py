"""Forms and one-click commands: `/backport` with no arguments opens a modal (the configured releases to pick
from, a field for the refs), the message shortcut "Summarize this PR" summarizes the PR a message links to, and
the "Hand out the next issue" button (offered when a newcomer's first PR merges) hands them another. Each ends in
`commands.dispatch`, so it is authorised, checked and queued exactly as the typed command."""

from __future__ import annotations

import logging
import re

from commands.backport import BACKPORT_MODAL
from commands.base import Invocation, in_background
from jobs.firstissue import NEXT_ACTION

log = logging.getLogger(__name__)

SUMMARIZE_SHORTCUT = "summarize_pr"
CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,20}")
PR_TOKEN = re.compile(r"(?:https?://[A-Za-z0-9.:-]{1,100}/[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}/pulls?/[0-9]{1,7}"
                      r"|\b[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}#[0-9]{1,7}|\bPR#[0-9]{1,7})", re.I)


def submitted_text(values: dict) -> tuple[str, str]:
    """The typed-command text a submission stands for: (releases, refs)."""
    rel = (values.get("releases") or {}).get("releases") or {}
    if rel.get("type") == "multi_static_select":
        releases = ",".join(str(o.get("value", "")) for o in rel.get("selected_options") or [])
    else:
        releases = str(rel.get("value") or "").strip()
    refs = str(((values.get("refs") or {}).get("refs") or {}).get("value") or "").strip()
    return releases, refs


def pr_in(text: str) -> str:
    """The first PR a message refers to (its URL, owner/repo#N or PR#N), '' when none."""
    m = PR_TOKEN.search(text[:20_000])
    return m.group(0) if m else ""


def register(app, services, dispatch) -> None:
    """`dispatch`: commands.dispatch, the one path every command takes (passed in: this module is part of it)."""
    chat = services.chats["slack"]

    async def typed(command: str, text: str, user: str, channel: str, **extra) -> None:
        """Run `/command text` as `user` typed it in `channel`, and answer them privately."""
        inv = Invocation(command=command, text=text, user=user, channel=channel, dest="slack", services=services,
                         **extra)
        in_background(_tell(chat, channel, user, (await dispatch(inv)).text))

    @app.view(BACKPORT_MODAL)
    async def on_backport(ack, body, view):
        user = body["user"]["id"]
        channel = str(view.get("private_metadata") or "")
        releases, refs = submitted_text((view.get("state") or {}).get("values") or {})
        if not CHANNEL.fullmatch(channel):
            await ack(response_action="errors", errors={"refs": "This form lost its channel; run /backport again."})
            return
        if not releases or not refs:
            await ack(response_action="errors", errors={"refs": "Give at least one release and one ref."})
            return
        inv = Invocation(command="backport", text=f"{releases} {refs}", user=user, channel=channel, dest="slack",
                         services=services, nonce=f"view:{view.get('id', '')}:{view.get('hash', '')}")
        outcome = await dispatch(inv)
        if not outcome.ok:
            await ack(response_action="errors", errors={"refs": outcome.text[:150]})
            return
        await ack()
        in_background(_tell(chat, channel, user, outcome.text))

    @app.action(NEXT_ACTION)
    async def on_next(ack, body):
        await ack()
        user = body["user"]["id"]
        channel = str((body.get("channel") or {}).get("id", ""))
        newcomer = str(body["actions"][0].get("value", ""))
        if not USER.fullmatch(newcomer) or not CHANNEL.fullmatch(channel):
            return
        ts = str((body.get("message") or {}).get("ts", ""))
        await typed("firstissue", f"<@{newcomer}>", user, channel, nonce=f"next:{ts}:{newcomer}")

    @app.shortcut(SUMMARIZE_SHORTCUT)
    async def on_summarize(ack, body):
        await ack()
        user = body["user"]["id"]
        channel = str((body.get("channel") or {}).get("id", ""))
        ref = pr_in(str((body.get("message") or {}).get("text", "")))
        if not ref:
            in_background(_tell(chat, channel, user, "That message links no pull request (a PR URL, owner/repo#N "
                                                     "or PR#N); nothing was queued."))
            return
        url = str(body.get("response_url") or "")
        await typed("summarize", ref.strip("<>"), user, channel,
                    response_url=url if url.startswith(("https://", "http://")) else "")


USER = re.compile(r"[UW][A-Z0-9]{2,20}")


async def _tell(chat, channel: str, user: str, text: str) -> None:
    try:
        await chat.ephemeral(channel, user, text)
    except Exception as exc:
        log.warning("could not answer %s: %s", user, exc)
