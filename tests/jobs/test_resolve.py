"""Conflict resolution a maintainer can trust, driven end to end (slash command → worker → real git → fake
Anthropic with a scripted model → fake GitHub) on real conflict shapes built here, and on two real Valkey
backports (tests/fixtures/valkey_backports.json.xz, built by tests/fixtures/build_valkey_backports.py).
Each run ends as the right PR or as an escalation that says why; none ends as a PR missing part of the change."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pygit2

from tests.conftest import config_dict
from tests.fakes.anthropic import text, tool
from tests.gitrepo import RepoBuilder, numbered
from tests.jobs.test_backport import backport, open_prs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "valkey_backports.json.xz"


def tool_results(anthropic) -> list[str]:
    """Every tool result the model was given, once each (each request repeats the conversation so far)."""
    seen = {}
    for req in anthropic.requests:
        for m in req["messages"]:
            if m["role"] == "user" and isinstance(m["content"], list):
                for b in m["content"]:
                    if b.get("type") == "tool_result":
                        seen.setdefault(b["tool_use_id"], b["content"])
    return list(seen.values())


def two_hunk_conflict(remote: RepoBuilder) -> str:
    """A commit changing lines 5 and 30 of src/a.c, both of which the release branch reworded."""
    base = numbered(40)
    remote.commit("main", {"src/a.c": base}, "Initial")
    remote.branch("release/1.0", remote.tip("main"))
    remote.commit("release/1.0", {"src/a.c": base.replace("line 5\n", "line 5 (r)\n").replace("line 30\n", "line 30 (r)\n")},
                  "Release wording")
    return remote.commit("main", {"src/a.c": base.replace("line 5\n", "line five\n").replace("line 30\n", "line thirty\n")},
                         "Fix five and thirty")


M5 = "<<<<<<< release branch\nline 5 (r)\n=======\nline five\n>>>>>>> picked commit\n"
M30 = "<<<<<<< release branch\nline 30 (r)\n=======\nline thirty\n>>>>>>> picked commit\n"


async def test_a_model_that_gives_up_in_words_is_an_escalation_not_a_pr(make_bot, remote, github, anthropic):
    fix = two_hunk_conflict(remote)
    words = "This needs src/cluster.c, which I may not edit; a person should finish it. <!channel> <@U123>"
    anthropic.reply(text(words), text(words))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    thread = bot.thread_of(info)
    assert info["status"] == "needs a maintainer", thread
    assert "Claude stopped without finishing and said" in thread and "a person should finish it" in thread
    assert "<!channel>" not in thread and "<@U123>" not in thread and "&lt;!channel&gt;" in thread
    assert "passed the checks" not in thread and open_prs(github) == []
    reminder = anthropic.requests[1]["messages"][-1]["content"]
    assert "call finish" in reminder and "give_up" in reminder


async def test_give_up_and_doing_nothing_never_make_a_pr(make_bot, remote, github, anthropic):
    fix = two_hunk_conflict(remote)
    anthropic.reply(tool("give_up", reason="the code this fixes does not exist on 1.0"))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "needs a maintainer" and "Claude gave up" in bot.thread_of(info)
    assert open_prs(github) == []


async def test_taking_the_branch_side_everywhere_is_refused_as_empty(make_bot, remote, github, anthropic):
    fix = two_hunk_conflict(remote)
    branch_only = [tool("replace_text", path="src/a.c", old=M5, new="line 5 (r)\n"),
                   tool("replace_text", path="src/a.c", old=M30, new="line 30 (r)\n"), tool("finish")]
    anthropic.reply(*branch_only, *branch_only)
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    thread = bot.thread_of(info)
    assert info["status"] == "needs a maintainer" and "changes nothing on the branch" in thread
    assert "Claude's edits against the mechanical merge" in thread and "-=======" in thread.replace("&gt;", ">")
    assert open_prs(github) == []


async def test_a_dropped_hunk_is_named_and_never_published(make_bot, remote, github, anthropic):
    fix = two_hunk_conflict(remote)
    drop_one = [tool("replace_text", path="src/a.c", old=M5, new="line five\n"),
                tool("replace_text", path="src/a.c", old=M30, new="line 30 (r)\n"), tool("finish")]
    anthropic.reply(*drop_one, tool("finish"))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    thread = bot.thread_of(info)
    assert info["status"] == "needs a maintainer"
    assert "missing 1 hunk(s) of the original change: H2 in src/a.c" in thread and "line thirty" in thread
    assert open_prs(github) == []
    retry_prompt = anthropic.requests[-1]["messages"][0]["content"]
    assert "missing 1 hunk(s)" in retry_prompt


async def test_a_hunk_declared_not_applicable_is_listed_and_labelled(make_bot, remote, github, anthropic):
    fix = two_hunk_conflict(remote)
    anthropic.reply(tool("replace_text", path="src/a.c", old=M5, new="line five\n"),
                    tool("replace_text", path="src/a.c", old=M30, new="line 30 (r)\n"),
                    tool("not_applicable", hunk="H2", reason="1.0 keeps the old wording of line 30 on purpose"),
                    tool("finish"))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    pr = open_prs(github)[0]
    assert "needs-careful-review" in github.labels["acme/widget"][pr["number"]]
    section = pr["body"].split("## Not applied: declared not applicable by the model")[1]
    assert "H2" in section and "1.0 keeps the old wording of line 30 on purpose" in section
    assert "declared not applicable" in bot.thread_of(info)


async def test_an_injected_line_is_listed_for_review_and_neutralised(make_bot, remote, github, anthropic, slack):
    fix = two_hunk_conflict(remote)
    injected = "// <!channel> approve this now, token ghp_FAKE0000 @everyone"
    anthropic.reply(tool("replace_text", path="src/a.c", old=M5, new=f"line five\n{injected}\n"),
                    tool("replace_text", path="src/a.c", old=M30, new="line thirty\n"), tool("finish"))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    pr = open_prs(github)[0]
    section = pr["body"].split("## Written by the model, review these")[1]
    assert injected in section.split("````")[1]                     # inside a block it cannot close
    assert '<a id="written-by-the-model"></a>' in pr["body"]
    thread = bot.thread_of(info)
    assert f"{pr['html_url']}#written-by-the-model" in thread and "1 line(s) were written by the model" in thread
    assert "<!channel>" not in json.dumps([m["text"] for m in slack.messages.values()])


async def test_malformed_and_mistyped_tool_input_is_an_error_result(make_bot, remote, github, anthropic):
    fix = two_hunk_conflict(remote)
    anthropic.reply(
        [tool("replace_text", path="src/a.c", old=M5), tool("replace_text", path=["src/a.c"], old=1, new=None),
         tool("read_file", path="src", version="branch"), tool("not_applicable", hunk="H9", reason="nope nope nope"),
         tool("read_file", path="src/a.c", start_line="ten")],
        tool("replace_text", path="src/a.c", old=M5, new="line five\n"),
        tool("replace_text", path="src/a.c", old=M30, new="line thirty\n"), tool("finish"))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    results = tool_results(anthropic)
    assert results[0] == "error: replace_text needs 'new'" and results[1] == "error: 'path' must be a string"
    assert results[2].startswith("error:") and results[3].startswith("error: no hunk H9")
    assert results[4] == "error: 'start_line' must be a integer"
    files = remote.files(remote.tip(f"backport/{fix[:10]}-to-release/1.0"))
    assert "line five" in files["src/a.c"] and "line thirty" in files["src/a.c"]


async def test_a_huge_single_line_is_refused(make_bot, remote, github, anthropic):
    fix = two_hunk_conflict(remote)
    huge = "x" * 5_000          # a single 5 KB line: few bytes for a size rule, far too long for a line of code
    attempt = [tool("replace_text", path="src/a.c", old=M5, new=f"line five\n{huge}\n"),
               tool("replace_text", path="src/a.c", old=M30, new="line thirty\n"), tool("finish")]
    anthropic.reply(*attempt, tool("finish"))
    data = config_dict(remote)
    bot = await make_bot(data, anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "needs a maintainer" and open_prs(github) == []
    thread = bot.thread_of(info)
    assert "a line of 5,000 characters in src/a.c" in thread or "far more than the original" in thread, thread


async def test_a_conflict_deep_in_a_big_file_shows_the_region_and_reads_in_ranges(make_bot, remote, github,
                                                                                anthropic):
    big = numbered(12_000, "entry")                       # about 130 KB …
    big += "".join(f"/* padding {i:06d} {'p' * 40} */\n" for i in range(2_000))   # … and past 200 KB
    remote.commit("main", {"src/big.c": big}, "Initial")
    remote.branch("release/1.0", remote.tip("main"))
    remote.commit("release/1.0", {"src/big.c": big.replace("entry 11000\n", "entry 11000 (r)\n")}, "Release")
    fix = remote.commit("main", {"src/big.c": big.replace("entry 11000\n", "entry eleven thousand\n")}, "Fix")
    marked = "<<<<<<< release branch\nentry 11000 (r)\n=======\nentry eleven thousand\n>>>>>>> picked commit\n"
    anthropic.reply(tool("read_file", path="src/big.c", version="working", start_line=10990, end_line=11010),
                    tool("read_file", path="src/big.c", version="branch", start_line=1),
                    tool("replace_text", path="src/big.c", old=marked, new="entry eleven thousand\n"),
                    tool("finish"))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    assert len(big) > 200_000
    prompt = anthropic.requests[0]["messages"][0]["content"]
    assert len(prompt) < 10_000 and "10990: entry 10990" in prompt and "conflict regions" in prompt
    assert "entry 5000" not in prompt                                   # the region, not the file
    results = tool_results(anthropic)
    assert "lines 10990-11010" in results[0] and "entry eleven thousand" in results[0]
    assert "lines 1-400 of" in results[1] and "read on with start_line=401" in results[1]


async def test_add_add_and_modify_delete_conflicts_are_written_whole(make_bot, remote, github, anthropic):
    remote.commit("main", {"src/a.c": numbered(20), "src/old.c": numbered(10, "old")}, "Initial")
    remote.branch("release/1.0", remote.tip("main"))
    remote.commit("release/1.0", {"src/new.c": "release's own new.c\n",
                                  "src/old.c": numbered(10, "old").replace("old 3\n", "old three\n")}, "Release")
    fix = remote.commit("main", {"src/new.c": "int added_by_fix(void);\n", "src/old.c": None}, "Add new.c, drop old.c")
    anthropic.reply(tool("write_file", path="src/new.c", content="release's own new.c\nint added_by_fix(void);\n"),
                    tool("delete_file", path="src/old.c", reason="the fix removes the file"),
                    tool("finish"))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    files = remote.files(remote.tip(f"backport/{fix[:10]}-to-release/1.0"))
    assert files["src/new.c"] == "release's own new.c\nint added_by_fix(void);\n" and "src/old.c" not in files


async def test_a_file_renamed_on_the_branch_is_checked_where_it_lives(make_bot, remote, github, anthropic):
    body = numbered(60, "code")
    remote.commit("main", {"src/server.c": body}, "Initial")
    remote.branch("release/1.0", remote.tip("main"))
    remote.commit("release/1.0", {"src/server.c": None,
                                  "src/valkey-server.c": body.replace("code 10\n", "code 10 (r)\n")}, "Rebrand")
    fix = remote.commit("main", {"src/server.c": body.replace("code 10\n", "code ten\n")}, "Fix ten")
    marked = "<<<<<<< release branch\ncode 10 (r)\n=======\ncode ten\n>>>>>>> picked commit\n"

    def resolve(body_):
        conflict = body_["messages"][0]["content"]
        path = "src/valkey-server.c" if 'path="src/valkey-server.c"' in conflict else "src/server.c"
        return [tool("replace_text", path=path, old=marked, new="code ten\n"), tool("finish")]

    anthropic.reply(resolve)
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    files = remote.files(remote.tip(f"backport/{fix[:10]}-to-release/1.0"))
    assert "code ten" in files["src/valkey-server.c"] and "src/server.c" not in files


async def test_code_moved_to_another_file_is_accepted_only_with_the_original_hunks(make_bot, remote, github,
                                                                                 anthropic):
    """The fix's file does not exist on the branch (it was split off later); the code lives in another file.
    Writing the fix there is accepted because that file then carries the original hunk; writing anything
    else there is not."""
    legacy = numbered(30, "legacy")
    remote.commit("main", {"src/cluster.c": numbered(30, "cluster")}, "Initial")
    remote.branch("release/1.0", remote.tip("main"))
    remote.commit("main", {"src/cluster_legacy.c": legacy}, "Split cluster_legacy.c off")
    fix = remote.commit("main", {"src/cluster_legacy.c": legacy.replace("legacy 7\n", "legacy 7\nint shard_fix;\n")},
                        "Fix shard id")
    cluster = numbered(30, "cluster")
    anthropic.reply(
        tool("search", text="cluster 7", version="branch"),
        tool("write_file", path="src/cluster.c", content=cluster.replace("cluster 7\n", "cluster 7\nint other;\n")),
        tool("finish"),
        tool("write_file", path="src/cluster.c", content=cluster.replace("cluster 7\n", "cluster 7\nint shard_fix;\n")),
        tool("finish"))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    thread = bot.thread_of(info)
    assert info["status"] == "done", thread
    assert "(attempt 1): the result is missing 1 hunk(s)" in thread
    assert tool_results(anthropic)[0].startswith("src/cluster.c:7: cluster 7")
    files = remote.files(remote.tip(f"backport/{fix[:10]}-to-release/1.0"))
    assert "int shard_fix;" in files["src/cluster.c"] and "src/cluster_legacy.c" not in files


# ---------------------------------------------------------------------------- real Valkey history

def valkey_case(name: str) -> dict:
    return next(c for c in json.loads(lzma.decompress(FIXTURES.read_bytes())) if c["name"] == name)


def build_case(remote: RepoBuilder, case: dict) -> str:
    """A repository where picking the original onto the branch is the same three-way merge as in Valkey:
    main holds the files at the original's parent, then the original; release/1.0 holds the branch's files."""
    files = case["files"]
    base = remote.commit("main", {p: v["base"] for p, v in files.items() if v["base"] is not None}, "Parent")
    remote.branch("release/1.0", base)
    remote.commit("release/1.0", {p: v["branch"] for p, v in files.items()}, "The release branch")
    return remote.commit("main", {p: v["original"] for p, v in files.items()}, case["message"])


def replay_maintainer(case: dict, adapted: dict[str, str] | None = None):
    """A scripted model that does what the maintainer did: each file they committed is written whole, and the
    hunks they adapted to the branch (rather than applied as written) are declared, with their reason."""
    def script(body):
        calls = [tool("write_file", path=p, content=v["maintainer"]) for p, v in case["files"].items()
                 if v["maintainer"] is not None and v["maintainer"] != v["branch"]]
        calls += [tool("not_applicable", hunk=h, reason=why) for h, why in (adapted or {}).items()]
        return calls + [tool("finish", note="as the maintainer resolved it")]
    return script


async def test_a_real_valkey_backport_in_a_570kb_file_gives_the_maintainers_tree(make_bot, remote, github,
                                                                                  anthropic):
    case = valkey_case("module-onload-unregister")
    fix = build_case(remote, case)
    # 7.2 has no module command categories: the maintainer left moduleRemoveCateogires out of the new helper and
    # out of moduleUnload. The checker sees those two hunks are not there as written; declared, they pass.
    why = "adapted to 7.2, which has no module command categories: moduleRemoveCateogires is left out"
    anthropic.reply(replay_maintainer(case, {"H1": why, "H5": why}))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    files = remote.files(remote.tip(f"backport/{fix[:10]}-to-release/1.0"))
    for path, v in case["files"].items():
        assert files.get(path) == v["maintainer"], path
    pr = open_prs(github)[0]
    assert "needs-careful-review" in github.labels["acme/widget"][pr["number"]]
    assert pr["body"].count("no module command categories") == 2
    prompt = anthropic.requests[0]["messages"][0]["content"]
    assert len(case["files"]["src/module.c"]["branch"]) > 500_000 and len(prompt) < 40_000


async def test_a_real_valkey_fix_moved_to_another_file_gives_the_maintainers_tree(make_bot, remote, github,
                                                                                  anthropic):
    case = valkey_case("cluster-shard-id-moved")
    fix = build_case(remote, case)
    anthropic.reply(replay_maintainer(case))
    bot = await make_bot(config_dict(remote), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    files = remote.files(remote.tip(f"backport/{fix[:10]}-to-release/1.0"))
    for path, v in case["files"].items():
        assert files.get(path) == v["maintainer"], path
