"""The audit trail in a browser: the "Audit log" button gives a maintainer a signed, expiring link in the job's
own thread; `GET /jobs/<id>` renders the stages, diff and output server-side, escaped; anything but a link the
bot signed gets 403. Browser tests open the page in headless Chromium (Debian's `chromium`) and save
screenshots under test-artifacts/."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession

from core.audit import link_key, link_signature, signed_path
from tests.conftest import CHANNEL, MAINTAINER, config_dict
from tests.gitrepo import numbered

HOSTILE = ('<script>document.body.dataset.pwned="script"</script>'
           '<img src=x onerror="document.body.dataset.pwned=\'img\'">')
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture
def base_repo(remote):
    base = remote.commit("main", {"src/a.c": numbered(40), "web/page.html": "<p>hello</p>\n"}, "Initial")
    remote.branch("release/1.0", base)
    return remote


async def finished_backport(make_bot, base_repo, github, **slack_cfg):
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 5\n", "line five\n"),
                                    "web/page.html": f"<p>hello</p>\n{HOSTILE}\n"}, "Fix five")
    github.add_pull("acme/widget", 41, title=f"Fix five {HOSTILE}", merge_commit_sha=fix)
    data = config_dict(base_repo)
    data["slack"].update(slack_cfg)
    bot = await make_bot(data)
    _, body = await bot.slash("/backport", "1.0 PR#41")
    key = body["text"].split("`")[1]
    info = await bot.final(key)
    assert info["status"] == "done"
    return bot, key, info


def final_message(bot, info) -> dict:
    return next(m for m in bot.slack.thread(info["thread_ts"])
                if any(e.get("action_id") == "job_audit" for b in m.get("blocks") or [] if b.get("type") == "actions"
                       for e in b["elements"]))


async def click_audit(bot, info, user=MAINTAINER, channel=None) -> str:
    message = dict(final_message(bot, info))
    if channel:
        message["channel"] = channel
    before = len(bot.slack.ephemerals)
    assert await bot.click("job_audit", "", message, user=user) == 200
    await bot.slack.wait_for(lambda: len(bot.slack.ephemerals) > before, what="the ephemeral answer")
    return bot.slack.ephemerals[-1]["text"]


def link_in(text: str) -> str:
    m = re.search(r"<(http://[^|>]+)\|", text)
    assert m, text
    return m.group(1)


async def get(url: str) -> tuple[int, str, dict]:
    async with ClientSession() as s:
        async with s.get(url) as r:
            return r.status, await r.text(), dict(r.headers)


async def test_a_maintainer_gets_a_link_that_shows_the_stages_and_the_diff_escaped(make_bot, base_repo, github):
    bot, key, info = await finished_backport(make_bot, base_repo, github)
    answer = await click_audit(bot, info)
    url = link_in(answer)
    assert url.startswith(f"http://localhost:{bot.config.env.port}/jobs/{key}?exp=")
    status, page, headers = await get(url.replace(f"localhost:{bot.config.env.port}", f"127.0.0.1:{bot.port}"))
    assert status == 200
    for stage in ("fetch", "resolve", "pick", "test", "publish", "report"):
        assert f'class="stage">{stage}' in page, stage
    assert '<span class="add">+line five</span>' in page and '<span class="del">-line 5</span>' in page
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;document.body.dataset.pwned" in page and "onerror=" in page   # shown as text
    assert "script-src" not in headers["Content-Security-Policy"] and "default-src 'none'" in headers[
        "Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"


async def test_anything_but_a_link_the_bot_signed_gets_403(make_bot, base_repo, github):
    bot, key, info = await finished_backport(make_bot, base_repo, github)
    base = f"http://127.0.0.1:{bot.port}"
    good = await signed_path(bot.services.redis, key, 600)
    assert (await get(base + good))[0] == 200
    exp = good.split("exp=")[1].split("&")[0]
    sig = good.split("sig=")[1]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    past = int(time.time()) - 5
    past_sig = link_signature(await link_key(bot.services.redis), key, past)
    other = "bp-" + ("0" * 10 if key[3:] != "0" * 10 else "1" * 10)
    for path in (f"/jobs/{key}", f"/jobs/{key}?exp={exp}", f"/jobs/{key}?sig={sig}",
                 f"/jobs/{key}?exp={exp}&sig={flipped}",                     # altered signature
                 f"/jobs/{key}?exp={int(exp) + 3600}&sig={sig}",             # a later expiry, same signature
                 f"/jobs/{other}?exp={exp}&sig={sig}",                       # another job, same signature
                 f"/jobs/{key}?exp={past}&sig={past_sig}",                   # expired
                 f"/jobs/{key}?exp=%C2%B2&sig={sig}", f"/jobs/{key}?exp=1e12&sig={sig}",
                 f"/jobs/{key}?exp={exp}&sig={sig.upper()}", "/jobs/..%2F..%2Fetc%2Fpasswd?exp=1&sig=0"):
        status, text, _ = await get(base + path)
        assert status in (403, 404), (path, status)
        assert "line five" not in text


async def test_the_link_is_for_maintainers_in_the_jobs_own_thread(make_bot, base_repo, github):
    bot, key, info = await finished_backport(make_bot, base_repo, github, security_channel="GSECRET01")
    assert "for maintainers" in await click_audit(bot, info, user="UOUTSIDE1")
    assert "job's own thread" in await click_audit(bot, info, channel="COTHER001")
    # An adversarial run's log holds security findings: its link is given only in the security channel.
    from core.queue import set_info

    await set_info(bot.services.redis, key, kind="adversarial")
    assert "security channel" in await click_audit(bot, info)
    assert "security channel" in await click_audit(bot, info, channel="COTHER001")
    assert f"/jobs/{key}?exp=" in await click_audit(bot, info, channel="GSECRET01")


async def test_the_console_prints_a_working_link(make_bot, base_repo, github):
    from commands import jobctl

    bot, key, info = await finished_backport(make_bot, base_repo, github)
    text = await jobctl.describe(bot.services, key)
    path = text.split("audit page: ")[1].split()[0].split(str(bot.config.env.port), 1)[1]
    assert (await get(f"http://127.0.0.1:{bot.port}{path}"))[0] == 200


def chromium(args: list[str], home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={home}", "--virtual-time-budget=3000", *args],
                          capture_output=True, text=True, timeout=90, env={**os.environ, "HOME": str(home)})


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium); "
                                             ".ci/run installs it")
async def test_in_a_real_browser_the_page_shows_the_job_and_runs_nothing(make_bot, base_repo, github, tmp_path):
    bot, key, info = await finished_backport(make_bot, base_repo, github)
    url = f"http://127.0.0.1:{bot.port}" + await signed_path(bot.services.redis, key, 600)
    done = await asyncio.to_thread(chromium, ["--dump-dom", url], tmp_path / "home")
    dom = done.stdout
    assert "Audit log of job" in dom and key in dom, done.stderr[-2000:]
    assert "pwned" not in dom.split("<body")[1].split(">")[0]           # no script set data-pwned on <body>
    assert "data-pwned" not in dom
    assert "<script" not in dom and "<img" not in dom                     # neither element exists in the DOM
    assert '<span class="add">+line five</span>' in dom
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "audit-page.png"
    done = await asyncio.to_thread(chromium, [f"--screenshot={shot}", "--window-size=1280,2000", url],
                                   tmp_path / "home2")
    assert shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
    # A link altered by one character is refused in the browser too.
    bad = url[:-1] + ("0" if url[-1] != "0" else "1")
    done = await asyncio.to_thread(chromium, ["--dump-dom", bad], tmp_path / "home3")
    assert "not valid" in done.stdout and "line five" not in done.stdout
    await asyncio.to_thread(chromium, [f"--screenshot={ARTIFACTS / 'audit-page-403.png'}", "--window-size=800,300",
                                       bad], tmp_path / "home4")
    # So is one that has expired.
    past = int(time.time()) - 1
    expired = (f"http://127.0.0.1:{bot.port}/jobs/{key}?exp={past}"
               f"&sig={link_signature(await link_key(bot.services.redis), key, past)}")
    done = await asyncio.to_thread(chromium, ["--dump-dom", expired], tmp_path / "home5")
    assert "not valid" in done.stdout and "line five" not in done.stdout
    assert json.dumps(info)


async def test_a_model_resolved_backport_shows_its_prompt_replies_and_tool_calls(make_bot, base_repo, github,
                                                                               anthropic):
    from tests.fakes.anthropic import tool

    base_repo.commit("release/1.0", {"src/a.c": numbered(40).replace("line 5\n", "line 5 (release wording)\n")},
                     "Release-only wording")
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 5\n", "line five, fixed\n")}, "Fix five")
    marked = "<<<<<<< release branch\nline 5 (release wording)\n=======\nline five, fixed\n>>>>>>> picked commit\n"
    anthropic.reply(tool("show_original_diff"), tool("replace_text", path="src/a.c", old=marked,
                                                     new="line five, fixed\n"),
                    tool("finish", note="applied the fix <script>alert(1)</script>"))
    bot = await make_bot(config_dict(base_repo), anthropic=anthropic)
    _, body = await bot.slash("/backport", f"1.0 {fix}")
    key = body["text"].split("`")[1]
    assert (await bot.final(key))["status"] == "done"
    status, page, _ = await get(f"http://127.0.0.1:{bot.port}" + await signed_path(bot.services.redis, key, 600))
    assert status == 200
    kinds = set(re.findall(r'<span class="kind">([a-z-]+)</span>', page))
    assert {"prompt", "reply", "tool", "conflict", "diff", "output"} - kinds <= {"output"}, kinds
    assert "replace_text" in page and "show_original_diff" in page and "&lt;conflict path=" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert bot.config.env.anthropic_api_key not in page
