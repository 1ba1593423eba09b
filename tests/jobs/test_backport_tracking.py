"""No backport forgotten: what each release wants (labels, a Projects v2 board read over GraphQL), its state per
PR, `/backport status`, the sweep (per PR and rolling), reconcile on merge / direct push / revert, and draft
conflict PRs — end to end through the web app, a worker, real git and the strict fakes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pygit2
import pytest

from core.queue import JobRequest, make_queue, submit
from jobs import backport_sweep
from jobs import backport_track as track
from jobs.backport import KIND as BACKPORT
from jobs.backport import BackportParams
from tests.conftest import CHANNEL, NOTIFY, config_dict
from tests.gitrepo import numbered, sig

REPO = "acme/widget"
LINES = 30


@pytest.fixture
def base_repo(remote):
    files = {f"src/f{i}.c": numbered(LINES, f"f{i}") for i in range(10)}
    base = remote.commit("main", files, "Initial")
    remote.branch("release/1.0", base)
    remote.branch("release/2.0", base)
    return remote


def change(remote, i: int, what: str, line: int = 5, branch: str = "main") -> str:
    """A commit changing one line of src/f<i>.c (on top of what the branch has)."""
    text = remote.files(branch)[f"src/f{i}.c"]
    new = text.replace(f"f{i} {line}\n", f"f{i} {line} {what}\n")
    assert new != text
    return remote.commit(branch, {f"src/f{i}.c": new}, f"{what}\n\nSigned-off-by: Dev One <dev@example.com>")


def merged_pr(remote, github, number: int, i: int, *, labels=("backport 1.0",), day: int = 1, line: int = 5) -> str:
    sha = change(remote, i, f"fix {number}", line=line)
    github.add_pull(REPO, number, title=f"Fix number {number}", merge_commit_sha=sha, labels=labels,
                    merged_at=f"2026-11-{day:02d}T00:00:00Z")
    return sha


def cherry_onto(remote, branch: str, sha: str, *, x: bool = True) -> str:
    """A cherry-pick of `sha` pushed straight to `branch` (a maintainer's direct push)."""
    repo = remote.repo
    commit = repo[pygit2.Oid(hex=sha)]
    onto = repo[pygit2.Oid(hex=remote.tip(branch))]
    index = repo.merge_trees(commit.parents[0].tree, onto.tree, commit.tree)
    assert index.conflicts is None
    tree = index.write_tree(repo)
    message = commit.message + (f"\n(cherry picked from commit {sha})\n" if x else "")
    s = sig()
    return str(repo.create_commit(f"refs/heads/{branch}", s, s, message, tree, [onto.id]))


def revert_on(remote, branch: str, sha: str) -> str:
    repo = remote.repo
    commit = repo[pygit2.Oid(hex=sha)]
    onto = repo[pygit2.Oid(hex=remote.tip(branch))]
    index = repo.merge_trees(commit.tree, onto.tree, commit.parents[0].tree)
    assert index.conflicts is None
    s = sig()
    return str(repo.create_commit(f"refs/heads/{branch}", s, s,
                                  f'Revert "{commit.message.splitlines()[0]}"\n\nThis reverts commit {sha}.\n',
                                  index.write_tree(repo), [onto.id]))


async def command(bot, args: str, channel: str = CHANNEL) -> tuple[str, dict]:
    _, body = await bot.slash("/backport", args, channel=channel)
    assert "Queued job" in body["text"], body
    key = body["text"].split("`")[1]
    return key, await bot.final(key, timeout=120)


def prs_open(github, head_prefix: str = "backport/") -> list[dict]:
    return [p for p in github.pulls.get(REPO, {}).values()
            if p["state"] == "open" and p["head"]["ref"].startswith(head_prefix)]


def row_of(text: str, number: int) -> str:
    return next(line for line in text.splitlines() if f"|#{number}>" in line)


async def test_release_of_label_follows_the_patterns_and_refuses_the_rest():
    pats = ("backport {release}", "needs-backport-{release}")
    assert track.release_of_label(pats, "backport 8.1") == "8.1"
    assert track.release_of_label(pats, "Needs-Backport-9.0") == "9.0"
    for bad in ("backport ", "backport", "backport 8.1 <!channel>", "backport ../x", "backport a..b",
                "backport " + "9" * 101, "needs-backport-", "xbackport 8.1", "backport -x"):
        assert track.release_of_label(pats, bad) is None, bad


async def test_status_shows_every_state_newest_first_each_linked(make_bot, base_repo, github, redis_url):
    data = config_dict(base_repo)
    data["backport"] = {"project": "orgs/acme/projects/7"}
    board = github.gql.add_project("acme", 7)
    waiting = merged_pr(base_repo, github, 11, 1, day=1)
    done = merged_pr(base_repo, github, 12, 2, day=2)
    cherry_onto(base_repo, "release/1.0", done)
    merged_pr(base_repo, github, 13, 3, day=3)
    merged_pr(base_repo, github, 14, 4, day=4)
    # 15 conflicts on the branch (the branch changed the same line); no model key: it needs a person
    base_repo.commit("release/1.0", {"src/f5.c": numbered(LINES, "f5").replace("f5 5\n", "f5 5 release\n")},
                     "Release-only wording")
    merged_pr(base_repo, github, 15, 5, day=5)
    # 16's change is on the branch already inside a bigger commit: picking it changes nothing
    sixteen = merged_pr(base_repo, github, 16, 6, day=6)
    base_repo.commit("release/1.0", {"src/f6.c": base_repo.files(sixteen)["src/f6.c"],
                                     "src/f7.c": numbered(LINES, "f7") + "extra\n"}, "A bigger change")
    board_only = merged_pr(base_repo, github, 17, 8, labels=(), day=7)
    github.gql.add_item(board, REPO, 17, status="To be backported", release="1.0")
    merged_pr(base_repo, github, 18, 9, labels=(), day=8)
    github.gql.add_item(board, REPO, 18, status="To be backported", release="2.0")     # another release
    bot = await make_bot(data)

    _, info = await command(bot, "1.0 #14")
    assert info["status"] == "done"
    _, info = await command(bot, "1.0 #15")
    assert info["status"] == "needs a maintainer"
    _, info = await command(bot, "1.0 #16")
    assert "already applied" in bot.thread_of(info).lower()
    # 13 is in flight: a backport job queued where no worker takes it yet
    parked = make_queue(redis_url, "parked")
    req = JobRequest(kind=BACKPORT,
                     params=BackportParams(repo=REPO, release="1.0", refs=("#13",)), summary="parked", channel=CHANNEL)
    sub = await submit(parked, bot.services.redis, req)
    await track.record(bot.services.redis, REPO, "1.0", 13, track.IN_FLIGHT, job=sub.key)
    await parked.disconnect()

    github.pulls[REPO][11]["title"] = "<!channel> *urgent* <https://evil.example|click> @everyone"
    key, info = await command(bot, "status 1.0")
    assert info["status"] == "done", bot.thread_of(info)
    text = bot.thread_of(info)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in row_of(text, 11) and "<https://evil" not in text
    expect = {11: "*waiting*", 12: "*done*", 13: "*in flight*", 14: "*PR open*", 15: "*needs a person*",
              16: "*skipped*", 17: "*waiting*"}
    for number, state in expect.items():
        assert state in row_of(text, number), (number, text)
    assert "|#18>" not in text                         # the board item for 2.0 is not 1.0's
    numbers = [int(line.split("|#")[1].split(">")[0]) for line in text.splitlines() if "|#" in line]
    assert numbers == [17, 16, 15, 14, 13, 12, 11]     # newest merge first
    backport_pr = prs_open(github, "backport/pr14-")[0]
    assert f"<{backport_pr['html_url']}|PR>" in row_of(text, 14)
    assert "https://test.slack.com/archives/" in row_of(text, 15) and "conflicts" in row_of(text, 15)
    assert "already applied" in row_of(text, 16)
    assert "2 waiting, 1 in flight, 1 PR open, 1 needs a person, 1 done, 1 skipped" in text
    assert waiting and board_only
    # what was asked of GitHub's GraphQL: one search for every label of the release, and the board
    queries = [c[1]["body"]["query"] for c in github.calls if c[0] == "graphql"]
    assert any("search(" in q for q in queries) and any("projectV2(" in q for q in queries)


async def test_status_in_the_console_prints_the_same_table(tmp_path, base_repo, github, redis_url):
    from bot.console import ConsoleChat, handle_line
    from core import config as config_mod
    from core.services import Services
    from jobs.worker import make_worker
    from tests.conftest import env_for

    merged_pr(base_repo, github, 11, 1)
    env = config_mod.load_env(env_for(tmp_path, None, github, None, redis_url))
    config = config_mod.parse(config_dict(base_repo), env=env)
    import io

    out = io.StringIO()
    chat = ConsoleChat(out)
    services = Services.build(config, redis_url, {"console": chat}, queue_name=f"console-{tmp_path.name}")
    worker = make_worker(services)
    task = asyncio.create_task(worker.start())
    try:
        keys = await handle_line(services, chat, "/backport status 1.0")
        assert keys
        for _ in range(600):
            info = await bot_info(services, keys[0])
            if info.get("status") == "done":
                break
            await asyncio.sleep(0.1)
        printed = out.getvalue()
        assert "#11" in printed and "waiting" in printed and "Fix number 11" in printed, printed
    finally:
        await worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await services.close()


async def bot_info(services, key):
    from core.queue import job_info

    return await job_info(services.redis, key)


async def test_a_per_pr_sweep_backports_the_oldest_waiting_first_capped_and_sums_up(make_bot, base_repo, github):
    data = config_dict(base_repo)
    data["backport"] = {"sweep_max": 3}
    merged_pr(base_repo, github, 21, 1, day=1)
    base_repo.commit("release/1.0", {"src/f2.c": numbered(LINES, "f2").replace("f2 5\n", "f2 5 release\n")},
                     "Release-only wording")
    merged_pr(base_repo, github, 22, 2, day=2)            # conflicts
    merged_pr(base_repo, github, 23, 3, day=3)
    merged_pr(base_repo, github, 24, 4, day=4)            # beyond the cap: waits for the next sweep
    bot = await make_bot(data)
    key, info = await command(bot, "sweep 1.0")
    assert info["status"] == "done", bot.thread_of(info)
    text = bot.thread_of(info)
    assert "Queued 3 backport(s)" in text
    assert text.index("#21") < text.index("#22") < text.index("#23")      # oldest merge first
    assert {p["head"]["ref"] for p in prs_open(github)} == {"backport/pr21-to-release/1.0",
                                                             "backport/pr23-to-release/1.0"}
    assert "*opened* (2)" in text and "*needs a person* (1)" in text and "#22" in text.split("*needs a person*")[1]
    assert "#24" not in text
    recs = await track.records(bot.services.redis, REPO, "1.0")
    assert recs[21]["state"] == track.PR_OPEN and recs[22]["state"] == track.NEEDS_PERSON and 24 not in recs
    # The next sweep takes what is still waiting, and nothing twice.
    key2, info2 = await command(bot, "sweep 1.0")
    text2 = bot.thread_of(info2)
    assert "Queued 1 backport(s)" in text2 and "#24" in text2 and "#21" not in text2.split("Queued")[1]
    assert len(prs_open(github)) == 3


async def test_a_rolling_pr_accumulates_picks_across_sweeps_and_keeps_the_earlier_one(make_bot, base_repo, github):
    data = config_dict(base_repo)
    data["backport"] = {"mode": "rolling", "signoff": True}
    first = merged_pr(base_repo, github, 31, 1, day=1)
    bot = await make_bot(data)
    _, info = await command(bot, "sweep 1.0")
    assert info["status"] == "done", bot.thread_of(info)
    assert "*opened* (1)" in bot.thread_of(info)
    [pr] = prs_open(github, "backport/rolling-to-")
    assert pr["base"]["ref"] == "release/1.0" and "#31" in pr["body"]

    second = merged_pr(base_repo, github, 32, 2, day=2)
    _, info = await command(bot, "sweep 1.0")
    text = bot.thread_of(info)
    assert "*updated* (1)" in text, text
    assert prs_open(github, "backport/rolling-to-") == [pr]           # the same PR, updated
    assert "#31" in pr["body"] and "#32" in pr["body"]
    tip = base_repo.tip("backport/rolling-to-release/1.0")
    messages = []
    c = base_repo.repo[pygit2.Oid(hex=tip)]
    while str(c.id) != base_repo.tip("release/1.0"):
        messages.append(c.message)
        c = c.parents[0]
    assert len(messages) == 2                                          # rebuilt from the tip: each pick once
    assert any(f"(cherry picked from commit {first})" in m for m in messages)
    assert any(f"(cherry picked from commit {second})" in m for m in messages)
    assert all(m.rstrip().endswith("Signed-off-by: maintainer-bot <maintainer-bot@users.noreply.github.com>")
               for m in messages)
    recs = await track.records(bot.services.redis, REPO, "1.0")
    assert recs[31]["state"] == recs[32]["state"] == track.PR_OPEN and recs[31]["link"] == pr["html_url"]


async def test_a_rolling_pr_that_can_no_longer_be_rebuilt_is_kept_as_it_was(make_bot, base_repo, github):
    data = config_dict(base_repo)
    data["backport"] = {"mode": "rolling"}
    merged_pr(base_repo, github, 33, 1, day=1)
    bot = await make_bot(data)
    await command(bot, "sweep 1.0")
    before = base_repo.tip("backport/rolling-to-release/1.0")
    # The branch moves under the rolling PR: #33's line is changed there another way.
    base_repo.commit("release/1.0", {"src/f1.c": numbered(LINES, "f1").replace("f1 5\n", "f1 5 release\n")},
                     "Release-only wording")
    merged_pr(base_repo, github, 34, 2, day=2)
    _, info = await command(bot, "sweep 1.0")
    text = bot.thread_of(info)
    assert "*needs a person* (1)" in text and "#33 no longer applies" in text, text
    assert base_repo.tip("backport/rolling-to-release/1.0") == before      # nothing lost, nothing half-done
    assert len(prs_open(github, "backport/rolling-to-")) == 1


async def test_a_new_pick_that_conflicts_is_left_out_of_the_rolling_pr_for_a_person(make_bot, base_repo, github):
    data = config_dict(base_repo)
    data["backport"] = {"mode": "rolling"}
    base_repo.commit("release/1.0", {"src/f1.c": numbered(LINES, "f1").replace("f1 5\n", "f1 5 release\n")},
                     "Release-only wording")
    merged_pr(base_repo, github, 35, 1, day=1)            # conflicts, and no model key
    clean = merged_pr(base_repo, github, 36, 2, day=2)
    bot = await make_bot(data)
    _, info = await command(bot, "sweep 1.0")
    text = bot.thread_of(info)
    assert "*opened* (1)" in text and "*needs a person* (1)" in text and "`/backport 1.0 #35`" in text, text
    [pr] = prs_open(github, "backport/rolling-to-")
    assert "#36" in pr["body"] and "#35" not in pr["body"]
    tip = base_repo.repo[pygit2.Oid(hex=base_repo.tip("backport/rolling-to-release/1.0"))]
    assert f"(cherry picked from commit {clean})" in tip.message
    assert str(tip.parents[0].id) == base_repo.tip("release/1.0")
    recs = await track.records(bot.services.redis, REPO, "1.0")
    assert recs[35]["state"] == track.NEEDS_PERSON and recs[36]["state"] == track.PR_OPEN


def push_payload(branch: str, after: str) -> dict:
    return {"ref": f"refs/heads/{branch}", "after": after, "repository": {"full_name": REPO},
            "head_commit": {"timestamp": datetime.now(UTC).isoformat()}}


def pr_payload(pr: dict, action: str, labels=()) -> dict:
    return {"action": action, "repository": {"full_name": REPO}, "sender": {"login": "maint"},
            "pull_request": dict(pr, updated_at=datetime.now(UTC).isoformat(),
                                 labels=[{"name": n} for n in labels])}


async def reconciled(bot, status: int, body: str) -> dict:
    assert status == 200, body
    # the tracking job (a merged PR also asks the first-issue trigger whether it was a newcomer's)
    [key] = [k for k in json.loads(body)["queued"] if k.startswith(("brc-", "bmk-"))]
    for _ in range(600):
        job = await bot.services.low_queue.job(key)
        if job is not None and job.status == "complete":
            break
        await asyncio.sleep(0.1)
    from core.queue import job_info

    return await job_info(bot.services.redis, key)


async def test_reconcile_marks_done_only_when_the_change_is_on_the_branch_and_a_revert_undoes_it(
        make_bot, base_repo, github):
    data = config_dict(base_repo)
    data["backport"] = {"project": "orgs/acme/projects/7"}
    board = github.gql.add_project("acme", 7)
    sha41 = merged_pr(base_repo, github, 41, 1)
    item41 = github.gql.add_item(board, REPO, 41, status="To be backported", release="1.0")
    sha42 = merged_pr(base_repo, github, 42, 2)
    bot = await make_bot(data)
    _, info = await command(bot, "1.0 #41")
    [bp] = prs_open(github, "backport/pr41-")

    # The backport PR is said to be merged, but its commit is not on the branch yet: nothing is marked.
    github.merge(REPO, bp["number"], "0" * 40)
    info = await reconciled(bot, *await bot.webhook("pull_request", pr_payload(bp, "closed"), "d-1"))
    assert "backported-to-1.0" not in github.labels[REPO].get(41, [])
    assert github.gql.status_of(item41) == "To be backported"

    # Now the branch really has it (the merge fast-forwarded it): marked, and the board item moved.
    base_repo.branch("release/1.0", base_repo.tip("backport/pr41-to-release/1.0"))
    await reconciled(bot, *await bot.webhook("push", push_payload("release/1.0", base_repo.tip("release/1.0")), "d-2"))
    assert "backported-to-1.0" in github.labels[REPO][41]
    assert github.gql.status_of(item41) == "Done"
    assert github.gql.mutations and github.gql.mutations[-1]["itemId"] == item41["id"]

    # A maintainer pushes #42's cherry-pick straight to the branch: marked as well.
    direct = cherry_onto(base_repo, "release/1.0", sha42)
    await reconciled(bot, *await bot.webhook("push", push_payload("release/1.0", direct), "d-3"))
    assert "backported-to-1.0" in github.labels[REPO][42]

    # Reverted on the branch: the mark comes off and it is waiting again.
    revert = revert_on(base_repo, "release/1.0", direct)
    info = await reconciled(bot, *await bot.webhook("push", push_payload("release/1.0", revert), "d-4"))
    assert "backported-to-1.0" not in github.labels[REPO][42]
    assert "backported-to-1.0" in github.labels[REPO][41]
    key, info = await command(bot, "status 1.0")
    text = bot.thread_of(info)
    assert "*waiting*" in row_of(text, 42) and "*done*" in row_of(text, 41)
    # …and a revert of the revert puts it back.
    again = revert_on(base_repo, "release/1.0", revert)
    await reconciled(bot, *await bot.webhook("push", push_payload("release/1.0", again), "d-5"))
    assert "backported-to-1.0" in github.labels[REPO][42]
    assert sha41


async def test_a_board_item_moved_back_when_its_backport_is_reverted(make_bot, base_repo, github):
    data = config_dict(base_repo)
    data["backport"] = {"project": "orgs/acme/projects/7", "done_label": ""}
    board = github.gql.add_project("acme", 7)
    sha = merged_pr(base_repo, github, 51, 1, labels=())
    item = github.gql.add_item(board, REPO, 51, status="To be backported", release="1.0")
    bot = await make_bot(data)
    picked = cherry_onto(base_repo, "release/1.0", sha)
    await reconciled(bot, *await bot.webhook("push", push_payload("release/1.0", picked), "e-1"))
    assert github.gql.status_of(item) == "Done" and 51 not in github.labels.get(REPO, {})
    revert = revert_on(base_repo, "release/1.0", picked)
    await reconciled(bot, *await bot.webhook("push", push_payload("release/1.0", revert), "e-2"))
    assert github.gql.status_of(item) == "To be backported"


async def test_a_conflict_becomes_a_draft_pr_whose_status_fails_until_the_markers_are_gone(make_bot, base_repo, github):
    base_repo.commit("release/1.0", {"src/f1.c": numbered(LINES, "f1").replace("f1 5\n", "f1 5 release\n")},
                     "Release-only wording")
    merged_pr(base_repo, github, 61, 1)
    bot = await make_bot(config_dict(base_repo))
    key, info = await command(bot, "1.0 #61")
    assert info["status"] == "needs a maintainer"
    escalation = next(m for m in bot.slack.thread(info["thread_ts"])
                      if any(b.get("type") == "actions" for b in m.get("blocks") or []))
    buttons = [e["action_id"] for b in escalation["blocks"] if b.get("type") == "actions" for e in b["elements"]]
    assert buttons == ["job_retry", "job_dismiss", "backport_draft", "job_audit"]
    assert prs_open(github) == []

    assert await bot.click("backport_draft", "", escalation) == 200
    for _ in range(300):
        drafts = prs_open(github)
        if drafts and github.statuses.get(REPO):
            break
        await asyncio.sleep(0.1)
    [draft] = drafts
    assert draft["draft"] is True and draft["head"]["ref"] == "backport/pr61-to-release/1.0"
    assert github.labels[REPO][draft["number"]] == ["backport", "backport-conflict"]
    head = base_repo.tip(draft["head"]["ref"])
    assert github.status_of(REPO, head, "backport/conflicts") == "failure"
    text = base_repo.files(head)["src/f1.c"]
    assert "<<<<<<< release branch" in text and ">>>>>>> picked commit" in text
    assert "git switch backport/pr61-to-release/1.0" in draft["body"] and "**draft**" in draft["body"]
    assert "Opening a draft PR" in bot.thread_of(info) or "chose a draft PR" in bot.thread_of(info)
    # A second click does nothing more.
    await bot.click("backport_draft", "", escalation)
    await asyncio.sleep(0.5)
    assert len(prs_open(github)) == 1
    recs = await track.records(bot.services.redis, REPO, "1.0")
    assert recs[61]["state"] == track.NEEDS_PERSON and recs[61]["link"] == draft["html_url"]

    # A push that leaves a marker keeps the status failing; one that removes them turns it green.
    lines = [x for x in text.splitlines() if not x.startswith(("<<<<<<<", ">>>>>>>"))]
    half = base_repo.commit(draft["head"]["ref"], {"src/f1.c": "\n".join(lines) + "\n"}, "Half resolved")
    draft["head"]["sha"] = half
    await reconciled(bot, *await bot.webhook("pull_request", pr_payload(draft, "synchronize",
                                                                        ["backport", "backport-conflict"]), "f-1"))
    assert github.status_of(REPO, half, "backport/conflicts") == "failure"
    fixed_text = "\n".join(x for x in lines if x != "=======" and x != "f1 5 release") + "\n"
    fixed = base_repo.commit(draft["head"]["ref"], {"src/f1.c": fixed_text}, "Resolved")
    draft["head"]["sha"] = fixed
    await reconciled(bot, *await bot.webhook("pull_request", pr_payload(draft, "synchronize",
                                                                        ["backport", "backport-conflict"]), "f-2"))
    assert github.status_of(REPO, fixed, "backport/conflicts") == "success"


async def test_a_backport_pr_closed_unmerged_makes_its_source_wait_again(make_bot, base_repo, github):
    merged_pr(base_repo, github, 71, 1)
    bot = await make_bot(config_dict(base_repo))
    await command(bot, "1.0 #71")
    [bp] = prs_open(github)
    bp["state"] = "closed"
    await reconciled(bot, *await bot.webhook("pull_request", pr_payload(bp, "closed"), "g-1"))
    recs = await track.records(bot.services.redis, REPO, "1.0")
    assert recs[71]["state"] == track.WAITING and "closed without merging" in recs[71]["reason"]


async def test_configured_label_patterns_trigger_and_others_do_not(make_bot, base_repo, github):
    data = config_dict(base_repo)
    data["backport"] = {"labels": ["needs-backport-{release}"]}
    github.permissions[REPO] = {"maint": "write"}
    merged_pr(base_repo, github, 81, 1, labels=())
    bot = await make_bot(data)
    pr = github.pulls[REPO][81]
    payload = dict(pr_payload(pr, "labeled"), label={"name": "backport 1.0"})
    status, body = await bot.webhook("pull_request", payload, "h-1")
    assert json.loads(body)["queued"] == []                          # not this repo's pattern
    payload = dict(pr_payload(pr, "labeled"), label={"name": "needs-backport-1.0"})
    status, body = await bot.webhook("pull_request", payload, "h-2")
    [key] = json.loads(body)["queued"]
    info = await bot.final(key, timeout=120)
    assert info["status"] == "done" and prs_open(github, "backport/pr81-to-release/1.0")


async def test_the_schedule_fires_each_sweep_once_across_workers(make_bot, base_repo, github):
    data = config_dict(base_repo)
    data["backport"] = {"sweep": "0 9 * * *"}
    bot = await make_bot(data, worker=False)
    nine = datetime(2026, 12, 2, 9, 0, 30, tzinfo=UTC).timestamp()
    first = await backport_sweep.schedule(bot.services, nine)
    second = await backport_sweep.schedule(bot.services, nine + 5)       # another worker, same minute
    assert len(first) == 1 and second == []
    assert await backport_sweep.schedule(bot.services, nine + 60) == []  # 09:01: not in the cron
    from core.queue import job_info

    info = await job_info(bot.services.redis, first[0])
    assert info["channel"] == NOTIFY and json.loads(info["params"])["at"] == "2026-12-02 09:00 UTC"
    assert info["queue"] == bot.services.low_queue.name


def test_tracking_config_is_checked(base_repo):
    from core import config as config_mod

    for backport, message in (({"sweep": "every day"}, "five-field cron"),
                              ({"sweep": "61 * * * *"}, "five-field cron"),
                              ({"mode": "batch"}, 'expected "per-pr" or "rolling"'),
                              ({"labels": ["backport"]}, "{release} once"),
                              ({"project": "acme/7"}, "orgs/<org>/projects/<n>"),
                              ({"sweep_max": 0}, "at least 1")):
        data = config_dict(base_repo, backport=backport)
        with pytest.raises(config_mod.ConfigError, match="backport") as exc:
            config_mod.parse(data)
        assert message in str(exc.value), (backport, str(exc.value))
    data = config_dict(base_repo, backport={"sweep": "0 9 * * *"})
    data["slack"].pop("notify_channel")
    with pytest.raises(config_mod.ConfigError, match="notify_channel"):
        config_mod.parse(data)
    ok = config_mod.parse(config_dict(base_repo, backport={"mode": "rolling", "done_label": "bp-done-{release}"}))
    assert ok.backport_for(ok.default_repo).label_for("8.1") == "bp-done-8.1"


def test_the_branch_scan_sees_picks_reverts_and_reverts_of_reverts(base_repo):
    a = change(base_repo, 1, "a")
    b = change(base_repo, 2, "b")
    pa = cherry_onto(base_repo, "release/1.0", a)
    pb = cherry_onto(base_repo, "release/1.0", b, x=False)          # no -x line: found by its patch-id
    repo = base_repo.repo
    log = track.scan_branch(repo, "release/1.0", "main")
    assert track.landed(repo, log, a) == pa and track.landed(repo, log, b) == pb
    r1 = revert_on(base_repo, "release/1.0", pa)
    log = track.scan_branch(repo, "release/1.0", "main")
    assert track.landed(repo, log, a) == ""
    revert_on(base_repo, "release/1.0", r1)
    log = track.scan_branch(repo, "release/1.0", "main")
    assert track.landed(repo, log, a) == pa
    # what the branch was cut from is on it
    assert track.landed(repo, track.scan_branch(repo, "release/1.0", "main"),
                        str(repo[pygit2.Oid(hex=a)].parents[0].id)) == "contained"
