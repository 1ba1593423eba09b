"""Every message the bot shows, rendered once for Slack (mrkdwn + Block Kit) and read as plain text by the
console. Keeps within Slack's limits: 3,000 characters a section, 50 blocks a message."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SECTION_MAX = 2900
TEXT_MAX = 3900
BLOCKS_MAX = 50

SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
USER_MENTION = re.compile(r"&lt;@([UW][A-Z0-9]{2,20})&gt;")
STATUS_ICONS = {
    "queued": ":hourglass_flowing_sand:",
    "running": ":gear:",
    "done": ":white_check_mark:",
    "needs a maintainer": ":raising_hand:",
    "failed": ":x:",
    "dismissed": ":no_entry_sign:",
}


def clip(text: str, limit: int = SECTION_MAX, keep: str = "head") -> str:
    """Cut text to `limit` characters, saying so; keep='tail' keeps the end (for logs)."""
    if len(text) <= limit:
        return text
    note = "…[cut]…"
    if keep == "tail":
        return note + text[-(limit - len(note)):]
    return text[: limit - len(note)] + note


def code(text: str, limit: int = SECTION_MAX, keep: str = "tail") -> str:
    """A fenced code block of untrusted text: escaped (Slack parses <…> even there), and unable to close the
    fence early."""
    body = clip(inert(text).replace("```", "'''"), limit - 8, keep)
    return f"```\n{body}\n```"


BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt);)")     # a fixed-width lookahead: linear on any input


def inert(text: str) -> str:
    """THE escaping function for untrusted text bound for Slack (paths, symbols, titles, branch names, build and
    test output, model replies, API errors): no mention, channel ping, or link survives. Idempotent, so text
    that was already made inert is not escaped twice (an attacker's own "&lt;" stays text)."""
    text = str(text)
    return (BARE_AMP.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")
            .replace("@channel", "@\u200bchannel").replace("@here", "@\u200bhere")
            .replace("@everyone", "@\u200beveryone"))


def lit(text: str, limit: int = 300) -> str:
    """Untrusted text as one inline code span (a path, a symbol, a branch): escaped, on one line, and a backtick
    inside can't close the span early."""
    body = inert(text).replace("`", "\u02cb").replace("\r", " ").replace("\n", " ")
    return f"`{clip(body, limit)}`"


def lits(items, limit: int = 20, sep: str = ", ") -> str:
    """A list of untrusted names as code spans, the first `limit` shown and the rest counted."""
    items = list(items)
    shown = sep.join(lit(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def link(url: str, text: str) -> str:
    """A Slack link to an http(s) URL from an API answer; anything else is shown inert, not linked."""
    if not url.startswith(("https://", "http://")) or any(c in url for c in "<>| \n"):
        return inert(text)
    return f"<{url}|{inert(text).replace('|', '¦').replace('>', '›')}>"


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def summary_text(summary: str) -> str:
    """A job's summary, built by a command from checked parts: a person it names stays a mention, nothing else
    does."""
    return USER_MENTION.sub(lambda m: f"<@{m.group(1)}>", inert(summary))


def parent_text(job_id: str, summary: str, requester: str, status: str, detail: str = "") -> str:
    icon = STATUS_ICONS.get(status, ":gear:")
    who = f"<@{requester}>" if requester and SLACK_USER.fullmatch(requester) else "GitHub"
    summary = summary_text(summary)
    line = f"{icon} {summary} · asked by {who} · job `{job_id}` — *{status}*"
    if detail:
        line += f": {inert(detail)}"
    return clip(line, TEXT_MAX)


def mention_list(ids: list[str] | tuple[str, ...]) -> str:
    out = []
    for i in ids:
        out.append(f"<!subteam^{i}>" if i.startswith("S") else f"<@{i}>")
    return " ".join(out)


@dataclass
class Escalation:
    """A person is needed: which stage failed, why, the files involved and the exact commands to finish."""

    stage: str
    reason: str
    files: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    log_tail: str = ""
    hints: list[str] = field(default_factory=list)
    diff: str = ""              # a model's edits against the mechanical merge, when it tried
    actions: list[tuple[str, str]] = field(default_factory=list)   # more buttons: (action_id, label)


AUDIT_ACTION = "job_audit"


def audit_button(job_key: str) -> dict:
    """The "Audit log" button: whoever may see the job gets a signed link, privately."""
    return {"type": "button", "action_id": AUDIT_ACTION, "text": {"type": "plain_text", "text": "Audit log"},
            "value": job_key}


def final_blocks(text: str, job_key: str) -> list:
    """A job's last reply as blocks: the text (in sections of Slack's size) and the Audit log button."""
    blocks, part = [], ""
    for line in text.split("\n"):
        if part and len(part) + len(line) + 1 > SECTION_MAX:
            blocks.append(section(part))
            part = ""
        part = f"{part}\n{line}" if part else line
    if part:
        blocks.append(section(part))
    blocks = blocks[:BLOCKS_MAX - 1]
    blocks.append({"type": "actions", "block_id": "job_audit", "elements": [audit_button(job_key)]})
    return blocks


def escalation_blocks(job_key: str, esc: Escalation, maintainers: tuple[str, ...], run: str = "1") -> tuple[str, list]:
    # The reason may quote a model, a build or an API: it is escaped here, whoever built it.
    text = f"{mention_list(maintainers)} A maintainer is needed: stage *{esc.stage}* — {inert(esc.reason)}".lstrip()
    blocks = [section(text)]
    if esc.files:
        files = "\n".join(f"• {lit(f)}" for f in esc.files[:40])
        if len(esc.files) > 40:
            files += f"\n…and {len(esc.files) - 40} more"
        blocks.append(section(f"*Files*\n{files}"))
    for hint in esc.hints:
        blocks.append(section(f":bulb: {hint}"))
    if esc.log_tail:
        blocks.append(section("*Log tail*\n" + code(esc.log_tail)))
    if esc.diff:
        blocks.append(section("*Claude's edits against the mechanical merge*\n" + code(esc.diff, keep="head")))
    if esc.commands:
        blocks.append(section("*To finish by hand*\n" + code("\n".join(esc.commands), keep="head")))
    blocks.append({
        "type": "actions",
        "block_id": "job_actions",
        "elements": [
            {"type": "button", "action_id": "job_retry", "text": {"type": "plain_text", "text": "Retry"},
             "style": "primary", "value": f"{job_key}:{run}"},     # a button acts on its own run only
            {"type": "button", "action_id": "job_dismiss", "text": {"type": "plain_text", "text": "Dismiss"},
             "value": f"{job_key}:{run}"},
            *({"type": "button", "action_id": action, "text": {"type": "plain_text", "text": label[:75]},
               "value": f"{job_key}:{run}"} for action, label in esc.actions),
            audit_button(job_key),
        ],
    })
    return text, blocks[:BLOCKS_MAX]


def blocks_to_text(blocks: list | None, text: str) -> str:
    """Plain-text reading of a message, for the console."""
    if not blocks:
        return text
    lines = []
    for block in blocks:
        if block.get("type") == "section":
            lines.append(block["text"]["text"])
        elif block.get("type") == "actions":
            buttons = [f"[{e['text']['text']}]" for e in block.get("elements", [])]
            lines.append(" ".join(buttons))
        elif block.get("type") == "context":
            lines.append(" ".join(e.get("text", "") for e in block.get("elements", [])))
    return "\n".join(lines)
