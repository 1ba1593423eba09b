"""What the summary says in Slack: the model's answer made inert, the headline, the coverage line and the list
of every changed file with what happened to it."""

from __future__ import annotations

import re

from core import render
from jobs.summarize.model import ModelResult, Source


def coverage_list(d, result: ModelResult, had_model: bool, limit: int = 2800) -> list[str]:
    """Every changed file, named, with what happened to it: read by the model, digest only, or set apart,
    split over as many replies as Slack's limits need (the promise: nothing changed goes unmentioned)."""
    read = set(result.read)
    lines = []
    for f in d.files:
        if f.kind in ("generated", "vendored", "binary"):
            state = f"set apart ({f.kind}), not read"
        elif f.path in read:
            state = "read by the model"
        elif not had_model:
            state = "digest only (no model)"
        elif result.error and not result.read:
            state = "digest only (the model step failed)"
        elif not f.has_patch:
            state = "not read: GitHub gave no diff for it (too large or binary)"
        else:
            state = "not read by the model: outside its token budget"
        lines.append(f"• {render.lit(f.path, 200)} — {state}")
    out, chunk = [], [f"*Every changed file* ({len(d.files)}):"]
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > limit:
            out.append("\n".join(chunk))
            chunk = ["*Every changed file* (continued):"]
        chunk.append(line)
    out.append("\n".join(chunk))
    return out


def since_text(previous: dict, src: Source) -> str:
    old = previous["files"]
    new = {c.path: c.fingerprint for c in src.changes}
    again = sorted(p for p in new if p in old and old[p] != new[p])
    added = sorted(p for p in new if p not in old)
    gone = sorted(p for p in old if p not in new)
    parts = []
    for label, paths in (("changed again", again), ("newly touched", added), ("no longer touched", gone)):
        if paths:
            shown = render.lits(paths, 10)
            parts.append(f"{label}: {shown}")
    body = "; ".join(parts) or "the same files, with the same changes"
    return f"*Since the last summary* (`{previous['head'][:10]}` → `{src.head[:10]}`): {body}."



def neutral(text: str) -> str:
    """Model output made inert: no mentions, no markup, no line that reads as a slash command."""
    text = render.inert(text)
    text = re.sub(r"(?<![\w`])@(?=\w)", "@\u200b", text)
    return "\n".join("\u200b" + line if line.lstrip().startswith("/") else line for line in text.splitlines())


def render_result(result: ModelResult) -> list[str]:
    if result.error and result.raw and not result.data:
        return [f":warning: {result.error}; here it is as written:\n" + render.code(neutral(result.raw), keep="head")]
    if result.error:
        return [f":warning: No LLM summary: {result.error}. The digest above comes from the diff alone."]
    data = result.data or {"summary": "", "review_first": [], "areas": []}
    out = []
    top = f"*Summary*\n{neutral(data['summary'])}" if data["summary"] else "*Summary*\n_(dropped: it named files not in the PR)_"
    if data["review_first"]:
        top += "\n\n*Review first*\n" + "\n".join(f"• {render.lit(r['file'])} — {neutral(r['why'])}"
                                                for r in data["review_first"])
    out.append(render.clip(top))
    for a in data["areas"]:
        lines = [f"*{neutral(a['area'])}*"] + [f"• {neutral(p)}" for p in a["points"]]
        if a["files"]:
            lines.append("_files: " + render.lits(a["files"], 50) + "_")
        out.append(render.clip("\n".join(lines)))
    return out


def headline_of(result: ModelResult, d) -> str:
    if result.data and result.data["summary"]:
        first = re.split(r"(?<=[.!?])\s", result.data["summary"].strip(), maxsplit=1)[0]
        return render.clip(neutral(first), 200)
    return f"digest only: {len(d.files)} file(s), +{d.additions}/−{d.deletions}"


def coverage(src: Source, d, result: ModelResult, had_model: bool) -> str:
    apart = {f.path for f in d.of_kind("generated", "vendored", "binary")}
    total = len(d.files)
    if not had_model or (result.error and not result.read):
        line = f"*Coverage*: digest only; no file was read by a model ({total} file(s) in the digest)"
    else:
        read = set(result.read)
        unread = [f.path for f in d.files if f.path not in read and f.path not in apart]
        line = f"*Coverage*: {len(read)}/{total} files read"
        if unread:
            line += "; not read: " + render.lits(unread, 20)
        line += f" ({result.calls} model call(s))"
    if apart:
        line += f"; set apart, not read: {len(apart)} generated/vendored/binary file(s)"
    drops = []
    if result.dropped_unknown:
        drops.append(f"{result.dropped_unknown} claim(s) naming files not in the PR")
    if result.dropped_unread:
        drops.append(f"{result.dropped_unread} claim(s) about files the model did not read")
    if drops:
        line += ". Dropped: " + ", ".join(drops)
    return line + "."
