"""Every `<pr>` may be a local range `base..head` in git's revision syntax (`^`, `~N`, tags, branches, short
and full SHAs), resolved by pygit2 in the mirror: /summarize, /provenance and /adversarial alike."""

from __future__ import annotations

from tests.conftest import config_dict
from tests.gitrepo import numbered
from tests.jobs.test_adversarial import SECURITY, private
from tests.jobs.test_adversarial import setup as adversarial_setup
from tests.jobs.test_provenance import World, bot_config, own_style


async def run(bot, command: str, args: str) -> dict:
    _, body = await bot.slash(command, args)
    assert "Queued job" in body["text"], body
    return await bot.final(body["text"].split("`")[1], timeout=240)


async def test_summarize_takes_caret_tilde_and_tags(make_bot, remote):
    remote.commit("main", {"src/a.c": numbered(10)}, "Initial")
    one = remote.commit("main", {"src/a.c": numbered(10).replace("line 2\n", "line two\n")}, "Two")
    two = remote.commit("main", {"src/b.c": "int b;\n"}, "Add b")
    three = remote.commit("main", {"src/c.c": "int c;\n"}, "Add c")
    remote.repo.references.create("refs/tags/v8.0.1", remote.repo[three].id)
    bot = await make_bot(config_dict(remote))
    info = await run(bot, "/summarize", f"{two[:10]}^..{two[:10]}")
    thread = bot.thread_of(info)
    assert info["status"] == "done" and "src/b.c" in thread and "src/a.c" not in thread and "src/c.c" not in thread
    info = await run(bot, "/summarize", "v8.0.1~3..v8.0.1")
    thread = bot.thread_of(info)
    assert info["status"] == "done" and all(f in thread for f in ("src/a.c", "src/b.c", "src/c.c")), thread
    info = await run(bot, "/summarize", f"{one}..main~1")
    thread = bot.thread_of(info)
    assert "src/b.c" in thread and "src/c.c" not in thread


async def test_provenance_of_a_range_needs_no_pull_request(tmp_path, make_bot, github):
    w = World(tmp_path / "w")
    _, head = w.pr("copy", {"src/replication.c": w.u1_code}, "Replica cache")
    _, clean = w.pr("clean", {"src/fresh.c": own_style("freshWork", 30)})
    bot = await make_bot(bot_config(w))
    info = await run(bot, "/provenance", f"{head[:12]}~1..{head[:12]}")
    assert info["status"] == "done" and "*Provenance: suspect*" in bot.thread_of(info), bot.thread_of(info)
    assert github.check_runs == []                     # no PR: no check run
    info = await run(bot, "/provenance", f"{clean}^..{clean}")
    assert "Provenance: clean" in bot.thread_of(info)


async def test_adversarial_on_a_range(make_bot, remote, github, slack):
    data = adversarial_setup(remote, github, buggy=True)
    bot = await make_bot(data)
    info = await run(bot, "/adversarial", "feature~1..feature 60")
    assert info["status"] == "done", bot.thread_of(info)
    assert any("*signal*" in r and "feature~1..feature" in r for r in private(slack)), private(slack)
    assert SECURITY not in bot.thread_of(info)
