"""`GET /jobs/<id>?exp=<unix seconds>&sig=<hex>`: a job's audit trail as an HTML page, rendered on the server.

Only links the bot signed open a page (core/audit.py): a missing, altered or expired signature gets 403, and
so does an unknown job. Every string on the page is escaped by Jinja2's autoescape (PR titles, file names,
prompts, model replies and test output are all untrusted); secrets are scrubbed again; the page carries a
Content-Security-Policy that allows no script at all, and needs none. Diffs are highlighted line by line."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.audit import Audit, link_key, link_ok, scrub
from core.queue import job_info

JOB_ID = re.compile(r"[a-z]{1,8}-[0-9a-f]{10}")
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                  autoescape=select_autoescape(["html"], default=True), trim_blocks=True, lstrip_blocks=True)


def diff_lines(text: str) -> list[tuple[str, str]] | None:
    """A unified diff as (css class, line) pairs, or None when the text is not one."""
    lines = text.split("\n")
    if not any(line.startswith("@@ ") for line in lines[:400]):
        return None
    out = []
    for line in lines:
        if line.startswith(("+++ ", "--- ", "diff --git")):
            cls = "file"
        elif line.startswith("@@"):
            cls = "hunk"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        else:
            cls = "ctx"
        out.append((cls, line))
    return out


def _stages(entries: list[dict], started: float, secrets: list[str]) -> list[dict]:
    """Entries grouped by stage, in the order stages first appear; each entry's text scrubbed again."""
    stages: dict[str, dict] = {}
    for e in entries:
        stage = stages.setdefault(str(e.get("stage", "")), {"name": str(e.get("stage", "")), "entries": [],
                                                            "outcome": ""})
        text = scrub(str(e.get("text", "")), secrets)
        data = e.get("data") or {}
        shown = {k: scrub(v if isinstance(v, str) else json.dumps(v, default=str), secrets)[:4000]
                 for k, v in data.items()} if isinstance(data, dict) else {}
        kind = str(e.get("kind", ""))
        if kind in ("done", "failed", "needs-person", "error", "escalated", "resumed"):
            stage["outcome"] = kind
        stage["entries"].append({"at": f"+{float(e.get('t', started)) - started:.1f}s", "kind": kind, "text": text,
                                 "diff": diff_lines(text), "data": shown})
    return list(stages.values())


def make_handler(services):
    async def handler(request: web.Request) -> web.Response:
        job = request.match_info.get("job", "")
        exp, sig = request.query.get("exp", ""), request.query.get("sig", "")
        if not JOB_ID.fullmatch(job) or not link_ok(await link_key(services.redis), job, exp, sig):
            return web.Response(status=403, text="This link is not valid (missing, altered or expired). Ask the "
                                                 "bot for a new one with the Audit log button.", headers=HEADERS)
        info = await job_info(services.redis, job)
        if not info:
            return web.Response(status=403, text="No such job is kept any more.", headers=HEADERS)
        secrets = services.config.env.secrets()
        entries = await Audit(services.redis, job).entries()
        started = float(info.get("created") or (entries[0]["t"] if entries else time.time()))
        page = ENV.get_template("audit.html").render(
            job=job, info={k: scrub(v, secrets) for k, v in info.items()},
            created=datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            expires=datetime.fromtimestamp(int(exp), UTC).strftime("%Y-%m-%d %H:%M UTC"),
            stages=_stages(entries, started, secrets), count=len(entries))
        return web.Response(text=page, content_type="text/html", charset="utf-8", headers=HEADERS)
    return handler
