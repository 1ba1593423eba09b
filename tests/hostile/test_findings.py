"""One test per finding of the hostile-outsider review (issue: nothing a stranger sends can stall, flood,
mislead or outrank a maintainer), each through the real web app, worker or module that was at fault."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse

import pytest
from aiohttp import ClientSession

from core import config as config_mod
from core.auth import CONSOLE_USER
from core.logs import ScrubSecrets
from jobs import fingerprint as fp
from jobs.resolve import Workspace, check_input
from tests.bot.test_app import seed
from tests.conftest import MAINTAINER, config_dict, sign_slack
from tests.jobs.test_provenance import World, bot_config, open_pr, own_style

HOSTILE_FILES = {
    "unclosed comment": "int x;\n/*" + "a" * 120_000,
    "escaped quotes": 'char *s = "' + '\\"' * 60_000,
    "many openers": "/*" * 60_000,
    "quote per line": ('"abc\\\\\n' * 20_000),
}


@pytest.mark.timeout(30)            # the quadratic scanners took 30 s and more on each of these
@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_fingerprints_are_linear_on_hostile_files(name):
    text = HOSTILE_FILES[name]
    added = fp.Added("src/evil.c", [(i + 1, line) for i, line in enumerate(text.split("\n"))])
    fp.prints(added, {"Redis": "Valkey"})
    fp.tokens(text, {})


async def test_a_hostile_120kb_pr_neither_blocks_the_loop_nor_delays_a_summary(tmp_path, make_bot, github, slack):
    """The provenance check of such a PR runs off the event loop: a ticker on the loop keeps ticking, and a
    /summarize asked meanwhile finishes."""
    from tests.jobs.test_summarize import small_pr

    w = World(tmp_path / "w")
    _, head = w.pr("evil", {"src/evil.c": HOSTILE_FILES["unclosed comment"], "src/ok.c": own_style("okWork", 20)})
    open_pr(w, github, 31, head, "Harmless")
    small_pr(github, number=32)
    bot = await make_bot(bot_config(w))
    gaps: list[float] = []

    async def ticker():
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            now = loop.time()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    try:
        _, body = await bot.slash("/provenance", "PR#31")
        key = body["text"].split("`")[1]
        _, body = await bot.slash("/summarize", "PR#32", user="UANYONE1")
        summary = await bot.final(body["text"].split("`")[1], timeout=60)
        info = await bot.final(key, timeout=60)
    finally:
        tick.cancel()
    assert summary["status"] == "done" and info["status"] == "done"
    assert max(gaps) < 1.0, max(gaps)           # the loop was never held for long (heartbeats keep beating)


async def post_raw(bot, body: bytes, headers: dict) -> tuple[int, str]:
    async with ClientSession() as s:
        async with s.post(f"{bot.url}/slack/events", data=body, headers=headers) as r:
            return r.status, await r.text()


async def test_a_huge_unsigned_body_is_refused_unread_and_a_signed_command_still_answers(make_bot, remote):
    seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    huge = b"payload=" + b"x" * (25 << 20)
    flood = asyncio.create_task(post_raw(bot, huge, {"Content-Type": "application/x-www-form-urlencoded"}))
    status, body = await bot.slash("/backport", "help")
    assert status == 200 and "/backport <release>" in body["text"]
    assert (await flood)[0] == 413
    # Small but unsigned (or signed for another body): refused before anything parses it.
    assert (await post_raw(bot, b"payload=x", {"Content-Type": "application/x-www-form-urlencoded"}))[0] == 401
    signed = sign_slack("command=%2Fbackport&text=help")
    assert (await post_raw(bot, b"command=%2Fbackport&text=evil", signed))[0] == 401
    assert await bot.queued() == 0


async def test_numbers_are_ascii_digits_only(make_bot, remote):
    seed(remote)
    data = config_dict(remote)
    data["adversarial"] = {"start": "true"}
    data["slack"]["security_channel"] = "CSECRET01"
    bot = await make_bot(data, worker=False)
    for arg in ("PR#1 ²", "PR#1 ٣", "#١٢", "PR#1 +5", "PR#1 1e3"):
        status, body = await bot.slash("/adversarial", arg)
        assert status == 200 and "Queued" not in body["text"], (arg, body)
    assert await bot.queued() == 0


async def test_a_release_name_git_refuses_is_a_one_line_refusal(make_bot, remote):
    fix = seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    for release in ("v1.lock", "../main", ".hidden", "a//b", "-x", "main.", "a@{1}"):
        status, body = await bot.slash("/backport", f"{release} {fix}")
        assert status == 200 and "is not a valid release or branch name" in body["text"], (release, body)
        assert "\n" not in body["text"].split("Usage:")[0]
    assert await bot.queued() == 0


def test_model_tools_answer_errors_for_bad_input(tmp_path):
    from tests.gitrepo import RepoBuilder

    remote = RepoBuilder(tmp_path / "r.git")
    sha = remote.commit("main", {"src/a.c": "x\n", "src/dir/b.c": "y\n"}, "c")
    commit = remote.repo[sha]
    ws = Workspace(remote.repo, {"src/a.c": "x\n"}, {"src/a.c"}, commit, commit, commit, "diff")
    assert ws.call("read_file", {"path": "src/dir", "version": "branch"}).startswith("error:")   # a directory
    assert ws.call("replace_text", {"path": "src/a.c", "old": "x"}).startswith("error:")       # no `new`
    assert ws.working["src/a.c"] == "x\n"                                                      # nothing deleted
    assert ws.call("replace_text", {"path": "src/a.c", "old": 1, "new": []}).startswith("error:")
    assert ws.call("read_file", ["src/a.c"]).startswith("error:")
    assert ws.call("read_file", {"path": "src/a.c", "version": "nope"}).startswith("error:")
    assert ws.call("no_such_tool", {}).startswith("error:")
    assert check_input("replace_text", {"path": "a", "old": "b", "new": "c", "extra": 1}).startswith("replace_text takes no")


def test_secrets_are_scrubbed_from_tracebacks_and_the_redis_password_and_app_key_count():
    key = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretkeyline0123456789\n"
           "abcdefghijklmnopqrstuvwxyz012345\n-----END RSA PRIVATE KEY-----\n")
    env = config_mod.load_env({"REDIS_URL": "redis://:hunter2-redis-pass@db:6379/0", "GITHUB_APP_ID": "1",
                               "GITHUB_APP_PRIVATE_KEY": key, "SLACK_BOT_TOKEN": "xoxb-planted-0000"})
    secrets = env.secrets()
    assert "hunter2-redis-pass" in secrets and "MIIEowIBAAKCAQEAsecretkeyline0123456789" in secrets
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "job failed", (), None)
    try:
        raise RuntimeError("connect failed: redis://:hunter2-redis-pass@db token xoxb-planted-0000")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    ScrubSecrets(secrets).filter(record)
    text = logging.Formatter().format(record)
    assert "hunter2-redis-pass" not in text and "xoxb-planted-0000" not in text and "[secret]" in text


async def test_the_console_user_is_a_maintainer_only_in_the_console(make_bot, remote):
    fix = seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    status, body = await bot.slash("/backport", f"1.0 {fix}", user=CONSOLE_USER)
    assert "for maintainers only" in body["text"] and await bot.queued() == 0
    assert await bot.services.auth.is_maintainer(MAINTAINER)


async def test_an_api_error_text_reaches_slack_neutralised_and_scrubbed(make_bot, remote, github, slack):
    """GitHub's error body is someone else's text: a mention in it stays text, and a secret of ours in it (or
    in anything we write to GitHub) is replaced."""
    from tests.fakes.github import TOKEN

    fix = seed(remote)
    github.fail("create_pull", status=422, times=10,
                body='{"message": "Validation failed <!channel> <@U0HOSTILE> token ' + TOKEN + '"}')
    data = config_dict(remote)
    data["queue"]["retries"] = 1
    bot = await make_bot(data)
    _, body = await bot.slash("/backport", f"1.0 {fix}")
    info = await bot.final(body["text"].split("`")[1], timeout=60)
    assert info["status"] in ("failed", "needs a maintainer")
    everything = " ".join(m["text"] + str(m["blocks"]) for m in slack.messages.values())
    assert "Validation failed" in everything
    assert "<!channel>" not in everything and "<@U0HOSTILE>" not in everything and TOKEN not in everything
