"""The backport job end to end: slash command → queue → worker → real git → fake GitHub / Slack / Anthropic."""

from __future__ import annotations

import pygit2
import pytest

from tests.conftest import config_dict
from tests.fakes.anthropic import tool
from tests.gitrepo import numbered


async def backport(bot, args: str) -> tuple[str, dict]:
    _, body = await bot.slash("/backport", args)
    assert "Queued job" in body["text"], body
    key = body["text"].split("`")[1]
    return key, await bot.final(key)


def open_prs(github, head: str | None = None) -> list[dict]:
    return [p for p in github.pulls.get("acme/widget", {}).values()
            if p["state"] == "open" and p["head"]["ref"].startswith("backport/")
            and (head is None or p["head"]["ref"] == head)]


def chain(remote, tip: str, base: str) -> list[str]:
    """Commits from base (exclusive) to tip, oldest first."""
    out, c = [], remote.repo[tip]
    while str(c.id) != base:
        out.append(str(c.id))
        c = c.parents[0]
    return out[::-1]


@pytest.fixture
def base_repo(remote):
    base = remote.commit("main", {"src/a.c": numbered(40), "src/b.c": numbered(40, "b"), "README": "r\n"}, "Initial")
    remote.branch("release/1.0", base)
    return remote


async def test_several_commits_apply_in_order_one_commit_each(make_bot, base_repo, github):
    one = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 3\n", "line three\n")}, "First fix")
    two = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 3\n", "line three\n")
                                    .replace("line 30\n", "line thirty\n")}, "Second fix")
    bot = await make_bot(config_dict(base_repo))
    key, info = await backport(bot, f"1.0 {one} {two}")
    assert info["status"] == "done"
    branch = f"backport/{one[:10]}-to-release/1.0"
    commits = chain(base_repo, base_repo.tip(branch), base_repo.tip("release/1.0"))
    assert [base_repo.repo[c].message.splitlines()[0] for c in commits] == ["First fix", "Second fix"]
    assert f"(cherry picked from commit {one})" in base_repo.repo[commits[0]].message
    assert f"(cherry picked from commit {two})" in base_repo.repo[commits[1]].message
    assert open_prs(github, branch)[0]["title"] == "[Backport 1.0] First fix"


async def test_squash_merged_pr(make_bot, base_repo, github):
    squash = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 7\n", "line seven\n")},
                              "Fix seven (#41)")
    github.add_pull("acme/widget", 41, title="Fix seven", merge_commit_sha=squash,
                    commits=[{"sha": "1" * 40, "commit": {"message": "wip"}},
                             {"sha": "2" * 40, "commit": {"message": "more wip"}}])
    bot = await make_bot(config_dict(base_repo))
    key, info = await backport(bot, "1.0 PR#41")
    assert info["status"] == "done"
    branch = "backport/pr41-to-release/1.0"
    assert len(chain(base_repo, base_repo.tip(branch), base_repo.tip("release/1.0"))) == 1
    pr = open_prs(github, branch)[0]
    assert pr["title"] == "[Backport 1.0] Fix seven"
    assert "- #41" in pr["body"]
    assert "Backport to `release/1.0`: " + pr["html_url"] in github.comments["acme/widget"][41][0]["body"]


async def test_merge_commit_pr_is_picked_against_its_first_parent(make_bot, base_repo, github):
    main_tip = base_repo.tip("main")
    topic = base_repo.commit("topic", {"src/b.c": numbered(40, "b").replace("b 9\n", "b nine\n")}, "Topic fix",
                             parents=[main_tip])
    base_repo.commit("main", {"README": "r2\n"}, "Meanwhile on main")
    merge = base_repo.merge("main", topic, "Merge pull request #42 from topic")
    github.add_pull("acme/widget", 42, title="Topic fix", merge_commit_sha=merge,
                    commits=[{"sha": topic, "commit": {"message": "Topic fix"}}])
    bot = await make_bot(config_dict(base_repo))
    key, info = await backport(bot, "1.0 #42")
    assert info["status"] == "done"
    tip = base_repo.tip("backport/pr42-to-release/1.0")
    files = base_repo.files(tip)
    assert "b nine" in files["src/b.c"] and files["README"] == "r\n"  # only the topic's change, not main's


async def test_rebase_merged_pr_brings_each_commit(make_bot, base_repo, github):
    c1 = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 1\n", "line one\n")}, "Part one")
    c2 = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 1\n", "line one\n")
                                   .replace("line 20\n", "line twenty\n")}, "Part two")
    github.add_pull("acme/widget", 43, title="Two parts", merge_commit_sha=c2,
                    commits=[{"sha": "a" * 40, "commit": {"message": "Part one"}},
                             {"sha": "b" * 40, "commit": {"message": "Part two"}}])
    bot = await make_bot(config_dict(base_repo))
    key, info = await backport(bot, "1.0 PR#43")
    assert info["status"] == "done"
    commits = chain(base_repo, base_repo.tip("backport/pr43-to-release/1.0"), base_repo.tip("release/1.0"))
    assert [base_repo.repo[c].message.splitlines()[0] for c in commits] == ["Part one", "Part two"]
    assert f"cherry picked from commit {c1}" in base_repo.repo[commits[0]].message


async def test_a_renamed_file_is_followed(make_bot, base_repo, github):
    base_repo.commit("main", {"src/a.c": None, "lib/a_renamed.c": numbered(40)}, "Move a.c to lib/")
    fix = base_repo.commit("main", {"lib/a_renamed.c": numbered(40).replace("line 12\n", "line twelve\n")},
                           "Fix twelve")
    bot = await make_bot(config_dict(base_repo))
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    files = base_repo.files(base_repo.tip(f"backport/{fix[:10]}-to-release/1.0"))
    assert "line twelve" in files["src/a.c"] and "lib/a_renamed.c" not in files


async def test_whitespace_only_conflict_is_settled_without_an_llm(make_bot, base_repo, github):
    base_repo.commit("release/1.0", {"src/a.c": numbered(40).replace("line 10\n", "line 10   \n")},
                     "Trailing spaces on the release branch")
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 10\n", "line ten\n")}, "Fix ten")
    bot = await make_bot(config_dict(base_repo))
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done"
    assert "Whitespace-only conflicts settled without an LLM in: `src/a.c`" in bot.thread_of(info)
    pr = open_prs(github)[0]
    assert "whitespace-only" in pr["body"] and github.labels["acme/widget"][pr["number"]] == ["backport"]


async def test_whitespace_settlement_keeps_the_branch_formatting_and_every_real_change(make_bot, base_repo, github):
    """The release branch re-spaced the lines around the fix: settled without an LLM, the result keeps the
    branch's spacing there (as maintainers do) and the fix's own change."""
    spaced = numbered(40).replace("line 9\n", "line 9   \n").replace("line 11\n", "line \t 11\n")
    base_repo.commit("release/1.0", {"src/a.c": spaced}, "Re-spaced on the release branch")
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 10\n", "line ten\n")}, "Fix ten")
    bot = await make_bot(config_dict(base_repo))
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    assert "Whitespace-only conflicts settled without an LLM" in bot.thread_of(info)
    files = base_repo.files(base_repo.tip(f"backport/{fix[:10]}-to-release/1.0"))
    assert files["src/a.c"] == spaced.replace("line 10\n", "line ten\n")


def conflicting(remote) -> str:
    remote.commit("release/1.0", {"src/a.c": numbered(40).replace("line 5\n", "line 5 (release wording)\n")},
                  "Release-only wording")
    return remote.commit("main", {"src/a.c": numbered(40).replace("line 5\n", "line five, fixed\n")}, "Fix five")


async def test_conflict_without_a_key_escalates_naming_files_and_a_missing_dependency(make_bot, base_repo, github):
    prereq = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 5\n", "line 5 (renamed)\n")},
                              "Rename five")
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 5\n", "line five, fixed\n")}, "Fix five")
    bot = await make_bot(config_dict(base_repo))
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "needs a maintainer"
    thread = bot.thread_of(info)
    assert "no ANTHROPIC_API_KEY is set, so the LLM step was skipped" in thread
    assert "`src/a.c`" in thread and f"git cherry-pick -x {fix}" in thread
    assert f"`{prereq[:10]}` Rename five" in thread
    assert open_prs(github) == []


def resolved_text() -> str:
    return numbered(40).replace("line 5\n", "line five, fixed\n")


async def test_conflict_resolved_by_claude_is_checked_and_labelled(make_bot, base_repo, github, anthropic):
    fix = conflicting(base_repo)
    marked = ("<<<<<<< release branch\nline 5 (release wording)\n=======\nline five, fixed\n>>>>>>> picked commit\n")
    anthropic.reply(
        tool("show_original_diff"),
        tool("read_file", path="src/a.c", version="working"),
        tool("replace_text", path="src/a.c", old=marked, new="line five, fixed\n"),
        tool("finish", note="applied the fix"),
    )
    bot = await make_bot(config_dict(base_repo), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    files = base_repo.files(base_repo.tip(f"backport/{fix[:10]}-to-release/1.0"))
    assert files["src/a.c"] == resolved_text()
    pr = open_prs(github)[0]
    assert github.labels["acme/widget"][pr["number"]] == ["backport", "ai-resolved-conflicts"]
    assert "- `src/a.c`" in pr["body"].split("## Files changed by an LLM")[1]
    first_prompt = anthropic.requests[0]["messages"][0]["content"]
    assert "<conflict path=\"src/a.c\">" in first_prompt and "<commit_message>" in first_prompt
    assert "data from the" in anthropic.requests[0]["system"]


async def test_a_resolution_touching_another_file_is_refused_then_retried(make_bot, base_repo, github, anthropic):
    fix = conflicting(base_repo)
    marked = ("<<<<<<< release branch\nline 5 (release wording)\n=======\nline five, fixed\n>>>>>>> picked commit\n")
    anthropic.reply(
        tool("replace_text", path="README", old="r\n", new="pwned\n"),
        tool("replace_text", path="../../etc/passwd", old="root", new="x"),
        tool("finish"),                                   # markers still there: the checker rejects
        tool("write_file", path="README", content="r\n"),  # told README does not belong, it puts it back
        tool("replace_text", path="src/a.c", old=marked, new="line five, fixed\n"),
        tool("finish"),
    )
    bot = await make_bot(config_dict(base_repo), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    results = [b["content"] for req in anthropic.requests for m in req["messages"] if m["role"] == "user"
               and isinstance(m["content"], list) for b in m["content"] if b.get("type") == "tool_result"]
    assert any("without '..'" in r for r in results)
    assert ("The checker rejected Claude's resolution (attempt 1): conflict markers remain in src/a.c; and these "
            "files the cherry-pick does not touch were edited: README") in bot.thread_of(info)
    retry_prompt = anthropic.requests[3]["messages"][0]["content"]      # the retry's first request
    assert "rejected by the checker: conflict markers remain" in retry_prompt
    files = base_repo.files(base_repo.tip(f"backport/{fix[:10]}-to-release/1.0"))
    assert files["README"] == "r\n" and files["src/a.c"] == resolved_text()


async def test_markers_left_twice_escalate(make_bot, base_repo, github, anthropic):
    fix = conflicting(base_repo)
    anthropic.reply(tool("finish"), tool("finish"))
    bot = await make_bot(config_dict(base_repo), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "needs a maintainer"
    assert "rejected twice; last reason: conflict markers remain in src/a.c" in bot.thread_of(info)
    assert open_prs(github) == []


async def test_red_tests_escalate_with_the_log(make_bot, base_repo, github):
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 2\n", "line two\n")}, "Fix two")
    bot = await make_bot(config_dict(base_repo, test_command="echo 'FAILED test_two: expected 2' && exit 3"))
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "needs a maintainer"
    thread = bot.thread_of(info)
    assert "stage *test*" in thread and "exited with 3" in thread and "FAILED test_two: expected 2" in thread
    assert open_prs(github) == []


async def test_red_tests_fixed_by_claude_once(make_bot, base_repo, github, anthropic, tmp_path):
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 2\n", "line two\n")}, "Fix two")
    check = "grep -q 'line two (checked)' src/a.c || { echo 'assertion failed: want checked'; exit 1; }"
    anthropic.reply(tool("replace_text", path="src/a.c", old="line two\n", new="line two (checked)\n"),
                    tool("finish"))
    bot = await make_bot(config_dict(base_repo, test_command=check), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    thread = bot.thread_of(info)
    assert "assertion failed" in thread and "Claude changed `src/a.c` to fix the tests" in thread
    branch = f"backport/{fix[:10]}-to-release/1.0"
    commits = chain(base_repo, base_repo.tip(branch), base_repo.tip("release/1.0"))
    assert len(commits) == 1 and "line two (checked)" in base_repo.files(commits[0])["src/a.c"]
    pr = open_prs(github)[0]
    assert "ai-resolved-conflicts" in github.labels["acme/widget"][pr["number"]]
    assert "<test_output>" in anthropic.requests[0]["messages"][0]["content"]


async def test_an_already_applied_change_is_not_an_error(make_bot, base_repo, github):
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 4\n", "line four\n")}, "Fix four")
    base_repo.commit("release/1.0", {"src/a.c": numbered(40).replace("line 4\n", "line four\n")}, "Fix four (1.0)")
    bot = await make_bot(config_dict(base_repo))
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done"
    assert "Already applied on `release/1.0`" in bot.thread_of(info)
    assert open_prs(github) == []


async def test_never_a_second_pr_for_the_same_source_and_branch(make_bot, base_repo, github):
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 6\n", "line six\n")}, "Fix six")
    bot = await make_bot(config_dict(base_repo))
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done"
    key2, info2 = await backport(bot, f"1.0 {fix}")       # after the first finished: a new job, same key
    assert key2 == key and info2["status"] == "done"
    assert "already exists for this source and branch" in bot.thread_of(info2)
    assert len(open_prs(github)) == 1


async def test_bad_refs_get_a_clear_answer_and_nothing_else(make_bot, base_repo, github):
    github.add_pull("acme/widget", 50, title="Open PR", merge_commit_sha=None, merged=False)
    bot = await make_bot(config_dict(base_repo))
    _, info = await backport(bot, "9.9 " + base_repo.tip("main"))
    assert info["status"] == "failed" and "there is no branch `9.9`" in bot.thread_of(info)
    _, info = await backport(bot, "1.0 deadbeefdeadbeef")
    assert info["status"] == "failed" and "commit deadbeefdeadbeef is not in the repository" in bot.thread_of(info)
    _, info = await backport(bot, "1.0 PR#50")
    assert info["status"] == "failed" and "PR #50 is not merged" in bot.thread_of(info)
    _, info = await backport(bot, "1.0 PR#51")
    assert info["status"] == "failed" and "PR #51 does not exist" in bot.thread_of(info)
    assert open_prs(github) == []


async def test_several_releases_newest_first_and_one_failure_stops_nothing(make_bot, base_repo, github):
    base_repo.branch("release/2.0", base_repo.tip("main"))
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 8\n", "line eight\n")}, "Fix eight")
    bot = await make_bot(config_dict(base_repo))
    _, body = await bot.slash("/backport", f"1.0,9.9,2.0 {fix}")
    lines = body["text"].splitlines()
    assert [line.split("→ ")[1].split(" ")[0] for line in lines] == ["9.9", "2.0", "1.0"]
    keys = [line.split("`")[1] for line in lines]
    statuses = [(await bot.final(k))["status"] for k in keys]
    assert statuses == ["failed", "done", "done"]
    assert {p["base"]["ref"] for p in open_prs(github)} == {"release/1.0", "release/2.0"}


@pytest.fixture
def daemon_remote(tmp_path):
    """A remote served by a real `git daemon` on loopback whose pre-receive hook refuses every push."""
    import shutil
    import subprocess
    import time

    from core.store import free_port
    from tests.gitrepo import RepoBuilder

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "served"
    remote = RepoBuilder(root / "remote.git")
    (root / "remote.git" / "git-daemon-export-ok").write_text("")
    hook = root / "remote.git" / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho 'refusing: release branches are protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    port = free_port()
    proc = subprocess.Popen(["git", "daemon", "--reuseaddr", f"--base-path={root}", "--enable=receive-pack",
                             "--listen=127.0.0.1", f"--port={port}", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    remote.daemon_url = f"git://127.0.0.1:{port}/remote.git"
    yield remote
    proc.terminate()
    proc.wait(10)


async def test_a_push_the_server_refuses_is_an_error_not_a_success(make_bot, daemon_remote, github):
    base = daemon_remote.commit("main", {"a.txt": numbered(10)}, "Initial")
    daemon_remote.branch("release/1.0", base)
    fix = daemon_remote.commit("main", {"a.txt": numbered(10).replace("line 2\n", "line two\n")}, "Fix two")
    bot = await make_bot(config_dict(daemon_remote, clone_url=daemon_remote.daemon_url))
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "needs a maintainer", bot.thread_of(info)
    thread = bot.thread_of(info)
    assert "stage *publish*" in thread and "the server refused the push" in thread
    assert "pre-receive hook declined" in thread
    assert open_prs(github) == []
    assert f"refs/heads/backport/{fix[:10]}-to-release/1.0" not in list(daemon_remote.repo.references)


async def test_concurrent_jobs_share_one_mirror_safely(make_bot, base_repo, github, tmp_path):
    fixes = []
    for i in range(6):
        fixes.append(base_repo.commit("main", {f"src/f{i}.c": f"fix {i}\n"}, f"Add f{i}"))
    data = config_dict(base_repo)
    data["queue"]["concurrency"] = 6
    bot = await make_bot(data)
    keys = []
    for sha in fixes:
        _, body = await bot.slash("/backport", f"1.0 {sha}")
        keys.append(body["text"].split("`")[1])
    infos = [await bot.final(k) for k in keys]
    assert [i["status"] for i in infos] == ["done"] * 6
    assert len(open_prs(github)) == 6
    mirrors = [m for m in (tmp_path / "data" / "mirrors").iterdir() if m.suffix == ".git"]
    assert [m.name for m in mirrors] == ["acme__widget.git"]   # one mirror, reused by every job
    import pygit2

    assert pygit2.Repository(str(mirrors[0])).is_bare


async def test_a_symlink_out_of_the_checkout_is_inert_for_the_test_command(make_bot, base_repo, github, tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST-ONLY-CONTENT\n")
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 2\n", "line two\n"),
                                    "leak": str(secret), "src/inner": "a.c"}, "Fix two, and links",
                           modes={"leak": pygit2.enums.FileMode.LINK, "src/inner": pygit2.enums.FileMode.LINK})
    check = "cat leak; echo; test -L src/inner && echo inner-link-kept; exit 4"
    bot = await make_bot(config_dict(base_repo, test_command=check))
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "needs a maintainer"
    thread = bot.thread_of(info)
    assert str(secret) in thread and "inner-link-kept" in thread and "exited with 4" in thread
    assert "HOST-ONLY-CONTENT" not in thread


async def test_a_conflict_in_a_symlink_escalates_without_claude(make_bot, base_repo, github, anthropic):
    LINK = pygit2.enums.FileMode.LINK
    base_repo.commit("release/1.0", {"cfg": "configs/release.conf"}, "Release link", modes={"cfg": LINK})
    base_repo.commit("main", {"cfg": "configs/main.conf"}, "Main link", modes={"cfg": LINK})
    fix = base_repo.commit("main", {"cfg": "/etc/shadow"}, "Point the link elsewhere", modes={"cfg": LINK})
    bot = await make_bot(config_dict(base_repo), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "needs a maintainer"
    assert "symbolic links and submodules are not resolved by Claude" in bot.thread_of(info)
    assert anthropic.requests == [] and open_prs(github) == []


async def test_a_resolved_executable_stays_executable(make_bot, base_repo, github, anthropic):
    EXE = pygit2.enums.FileMode.BLOB_EXECUTABLE
    base_repo.commit("main", {"run.sh": numbered(10)}, "Script", modes={"run.sh": EXE})
    base_repo.commit("release/1.0", {"run.sh": numbered(10).replace("line 5\n", "line 5 (release)\n")},
                     "Release script", modes={"run.sh": EXE})
    fix = base_repo.commit("main", {"run.sh": numbered(10).replace("line 5\n", "line five\n")}, "Fix script",
                           modes={"run.sh": EXE})
    anthropic.reply(tool("read_file", path="run.sh"),
                    tool("replace_text", path="run.sh",
                         old="<<<<<<< release branch\nline 5 (release)\n=======\nline five\n>>>>>>> picked commit\n",
                         new="line five\n"),
                    tool("finish"))
    bot = await make_bot(config_dict(base_repo), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done", bot.thread_of(info)
    tip = base_repo.repo[pygit2.Oid(hex=base_repo.tip(f"backport/{fix[:10]}-to-release/1.0"))]
    assert tip.tree["run.sh"].filemode == EXE
    assert base_repo.repo[tip.tree["run.sh"].id].data.decode() == numbered(10).replace("line 5\n", "line five\n")


async def test_claude_may_not_retarget_a_symlink_while_fixing_tests(make_bot, base_repo, github, anthropic):
    LINK = pygit2.enums.FileMode.LINK
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 2\n", "line two\n"), "cfg": "src/a.c"},
                           "Fix two, link cfg", modes={"cfg": LINK})
    anthropic.reply(tool("replace_text", path="cfg", old="src/a.c", new="/etc/shadow"), tool("finish"))
    bot = await make_bot(config_dict(base_repo, test_command="exit 1"), anthropic=anthropic)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "needs a maintainer"
    results = [b["content"] for req in anthropic.requests for m in req["messages"] if m["role"] == "user"
               and isinstance(m["content"], list) for b in m["content"] if b.get("type") == "tool_result"]
    assert results and results[0] == "error: cfg is not a regular file"
    assert "Claude changed nothing" in bot.thread_of(info)


async def test_a_commit_not_on_the_default_branch_is_refused(make_bot, base_repo, github):
    """An outsider's unmerged PR head lands in the mirror (a provenance check fetches it): its SHA is not
    merged work, so `/backport <sha>` refuses it, and its test script never runs."""
    base = base_repo.tip("main")
    head = base_repo.commit("outsider", {"ci.sh": "echo pwned\n", "src/a.c": numbered(40) + "evil\n"},
                            "Outsider change", parents=[base])
    base_repo.repo.references.create("refs/pull/5/head", base_repo.repo[head].id, force=True)
    bot = await make_bot(config_dict(base_repo, test_command="sh ci.sh"))
    key, info = await backport(bot, f"1.0 {head}")
    assert info["status"] == "failed"
    assert "is not on `main`; only merged work is backported" in bot.thread_of(info)
    assert open_prs(github) == []
    await bot.stop()                                          # its worker must not take the next job
    data = config_dict(base_repo, protected_branches=["outsider"])
    bot2 = await make_bot(data)
    key, info = await backport(bot2, f"1.0 {head}")
    assert info["status"] == "done", bot2.thread_of(info)     # a configured protected branch is a source


async def test_commits_carry_a_dco_sign_off_when_the_repo_asks(make_bot, base_repo, github):
    """`[backport] signoff = true`: the bot's own `Signed-off-by:` after the cherry-pick line, the author's kept."""
    fix = base_repo.commit("main", {"src/a.c": numbered(40).replace("line 5\n", "line five\n")},
                           "Fix five\n\nSigned-off-by: Ada Author <ada@example.org>")
    data = config_dict(base_repo)
    data["backport"] = {"signoff": True, "name": "Release Bot", "email": "release-bot@example.org"}
    bot = await make_bot(data)
    key, info = await backport(bot, f"1.0 {fix}")
    assert info["status"] == "done"
    commit = base_repo.repo[base_repo.tip(f"backport/{fix[:10]}-to-release/1.0")]
    assert commit.message.endswith(f"(cherry picked from commit {fix})\n\nSigned-off-by: Ada Author <ada@example.org>\n"
                                   "Signed-off-by: Release Bot <release-bot@example.org>\n"), commit.message
    assert commit.committer.email == "release-bot@example.org"
    assert commit.author.email == base_repo.repo[fix].author.email          # the author stays the author
