"""/firstissue against fake GitHub and Slack with a real Redis: the private pool, links, hand-outs with
assignment and DM, races, nudges and returns on a controlled clock, and the PR-opened webhook."""

from __future__ import annotations

import asyncio

from jobs import firstissue
from tests.conftest import OUTSIDER, config_dict

NEWCOMER = "UNEWBIE01"
CONTRIBUTING = """# Contributing

## Building and testing
Run `make` to build, then `make test`.

## Code of conduct
Be kind.
"""


async def ask(bot, text, user=None):
    kwargs = {"user": user} if user else {}
    return (await bot.slash("/firstissue", text, **kwargs))[1]["text"]


async def last_response(bot, count: int) -> str:
    await bot.slack.wait_for(lambda: len(bot.slack.responses) >= count, what="the private answer")
    return bot.slack.responses[count - 1]["text"]


def seed(github, n=3):
    github.users.add("newbie")
    github.files["acme/widget"] = {"CONTRIBUTING.md": CONTRIBUTING}
    for i in range(1, n + 1):
        github.add_issue("acme/widget", i, f"Small fix {i}")


async def setup(make_bot, remote, github, **extra):
    seed(github)
    data = config_dict(remote)
    data.update(extra)
    bot = await make_bot(data)
    return bot


async def test_pool_add_list_remove_and_link(make_bot, remote, github, slack):
    bot = await setup(make_bot, remote, github)
    github.add_issue("acme/widget", 9, "Closed one", state="closed")
    assert await ask(bot, "add #1 parser edge case") == "Checking #1 on GitHub…"
    assert "Added #1 (Small fix 1) to the private pool." == await last_response(bot, 1)
    await ask(bot, "add #9")
    assert "#9 is closed; nothing was added." == await last_response(bot, 2)
    await ask(bot, "add #77")
    assert "There is no issue #77" in await last_response(bot, 3)
    await ask(bot, "add #1 again")
    assert "#1 is already in the pool." == await last_response(bot, 4)
    listing = await ask(bot, "list")
    assert "• #1: free — parser edge case" in listing
    # Links: maintainers link anyone; a person may link themselves; a login must exist.
    await ask(bot, f"link <@{NEWCOMER}|newbie> newbie")
    assert await last_response(bot, 5) == f"Linked <@{NEWCOMER}> to GitHub newbie (confirmed by a maintainer)."
    await ask(bot, f"link <@{OUTSIDER}|me> ghost-login", user=OUTSIDER)
    assert "There is no GitHub user ghost-login" in await last_response(bot, 6)
    assert "for maintainers" in await ask(bot, f"link <@{NEWCOMER}|x> newbie", user=OUTSIDER)
    assert "for maintainers" in await ask(bot, "list", user=OUTSIDER)
    assert await ask(bot, "remove #1") == "Removed #1 from the pool."
    assert await ask(bot, "remove #1") == "#1 is not in the pool."
    assert slack.parents() == []          # the pool is never shown in a channel


async def handout(bot, text):
    _, body = await bot.slash("/firstissue", text)
    assert "Queued job" in body["text"], body
    key = body["text"].split("`")[1]
    return key, await bot.final(key)


async def pool_with(bot, *numbers):
    for i, n in enumerate(numbers):
        await ask(bot, f"add #{n} note {n}")
        await last_response(bot, len(bot.slack.responses) + 1)


async def test_hand_out_assigns_dms_and_threads(make_bot, remote, github, slack):
    bot = await setup(make_bot, remote, github)
    await pool_with(bot, 1, 2)
    await firstissue.link(bot.services.redis, NEWCOMER, "newbie")
    key, info = await handout(bot, f"<@{NEWCOMER}|newbie>")
    assert info["status"] == "done"
    assert github.issues["acme/widget"][1]["assignees"] == [{"login": "newbie"}]
    dm = [m for m in slack.messages.values() if m["channel"].startswith("D")][0]["text"]
    assert "Small fix 1" in dm and "note 1" in dm and "Run `make` to build" in dm and "Code of conduct" not in dm
    assert "Handed #1 (Small fix 1)" in bot.thread_of(info)
    listing = await ask(bot, "list")
    assert f"• #1: held by <@{NEWCOMER}> (newbie)" in listing and "• #2: free" in listing
    # One at a time, unless the maintainer says otherwise.
    _, info2 = await handout(bot, f"<@{NEWCOMER}|newbie>")
    assert "already holds #1" in bot.thread_of(info2)
    _, info3 = await handout(bot, f"<@{NEWCOMER}|newbie> --another")
    assert github.issues["acme/widget"][2]["assignees"] == [{"login": "newbie"}]


async def test_issues_closed_assigned_or_taken_meanwhile_are_skipped(make_bot, remote, github):
    bot = await setup(make_bot, remote, github)
    github.add_issue("acme/widget", 4, "Fourth")
    await pool_with(bot, 1, 2, 3, 4)
    github.issues["acme/widget"][1]["state"] = "closed"
    github.issues["acme/widget"][2]["assignees"] = [{"login": "someone"}]
    github.timelines["acme/widget"] = {3: [{"event": "cross-referenced", "source": {
        "issue": {"number": 50, "state": "open", "pull_request": {"url": "x"}}}}]}
    await firstissue.link(bot.services.redis, NEWCOMER, "newbie")
    key, info = await handout(bot, f"<@{NEWCOMER}>")
    thread = bot.thread_of(info)
    assert "#1 was closed on GitHub; I took it out of the pool." in thread
    assert "Skipped #2: someone is already assigned on GitHub." in thread
    assert "Skipped #3: an open pull request already references it." in thread
    assert "Handed #4" in thread
    assert [n for n, _, _ in await firstissue.Pool(bot.services.redis, "acme/widget").entries()] == [2, 3, 4]


async def test_a_newcomer_without_a_login_is_asked_to_link(make_bot, remote, github, slack):
    bot = await setup(make_bot, remote, github)
    await pool_with(bot, 1)
    key, info = await handout(bot, "<@UNOLINK01|nolink>")
    assert "has no linked GitHub login, so nothing was assigned" in bot.thread_of(info)
    dm = [m for m in slack.messages.values() if m["channel"] == "DNOLINK01"][0]["text"]
    assert "/firstissue link <@UNOLINK01> <your-login>" in dm
    assert github.issues["acme/widget"][1]["assignees"] == []


async def test_plain_name_mentions_are_resolved(make_bot, remote, github, slack):
    bot = await setup(make_bot, remote, github)
    slack.users[NEWCOMER] = "newbie"
    await pool_with(bot, 1)
    await ask(bot, "link @newbie newbie")
    assert f"Linked <@{NEWCOMER}> to GitHub newbie (confirmed by a maintainer)." in await last_response(bot, 2)
    key, info = await handout(bot, "@newbie")
    assert github.issues["acme/widget"][1]["assignees"] == [{"login": "newbie"}]


async def test_simultaneous_hand_outs_never_give_an_issue_twice(make_bot, remote, github):
    data = config_dict(remote)
    data["queue"]["concurrency"] = 10
    seed(github, n=5)
    bot = await make_bot(data)
    await pool_with(bot, 1, 2, 3, 4, 5)
    people = [f"UPERSON{i:02d}" for i in range(10)]
    for i, user in enumerate(people):
        github.users.add(f"person{i}")
        await firstissue.link(bot.services.redis, user, f"person{i}")
    answers = await asyncio.gather(*(bot.slash("/firstissue", f"<@{u}>") for u in people))
    keys = [a[1]["text"].split("`")[1] for a in answers]
    infos = [await bot.final(k) for k in keys]
    assert all(i["status"] == "done" for i in infos)
    assignees = [a["login"] for n in range(1, 6) for a in github.issues["acme/widget"][n]["assignees"]]
    assert len(assignees) == 5 and len(set(assignees)) == 5          # five issues, five different people
    assert all(len(github.issues["acme/widget"][n]["assignees"]) == 1 for n in range(1, 6))
    holds = await firstissue.Pool(bot.services.redis, "acme/widget").holds()
    assert sorted(holds) == [1, 2, 3, 4, 5]
    assert sum("pool has no open, unassigned issue" in bot.thread_of(i) for i in infos) == 5


async def test_nudge_then_return_on_a_controlled_clock(make_bot, remote, github, slack):
    bot = await setup(make_bot, remote, github, firstissue={"nudge_after_days": 14, "return_after_days": 7})
    clock = [1_800_000_000.0]
    bot.services.clock = lambda: clock[0]
    await pool_with(bot, 1)
    await firstissue.link(bot.services.redis, NEWCOMER, "newbie")
    key, info = await handout(bot, f"<@{NEWCOMER}>")
    day = 86400
    dms = lambda: [m for m in slack.messages.values() if m["channel"] == "DNEWBIE01"]  # noqa: E731
    assert await firstissue.follow_up(bot.services, clock[0] + 13 * day) == []
    assert await firstissue.follow_up(bot.services, clock[0] + 14 * day) == ["nudged acme/widget#1"]
    assert "Just checking in on #1" in dms()[-1]["text"]
    assert await firstissue.follow_up(bot.services, clock[0] + 15 * day) == []          # one nudge only
    assert await firstissue.follow_up(bot.services, clock[0] + 21 * day) == ["returned acme/widget#1"]
    assert github.issues["acme/widget"][1]["assignees"] == []
    assert "#1 went back to the pool" in bot.thread_of(info)
    assert "• #1: free" in await ask(bot, "list")


async def test_a_pr_for_the_issue_tells_the_maintainer_and_restarts_the_clock(make_bot, remote, github):
    bot = await setup(make_bot, remote, github)
    await pool_with(bot, 1)
    await firstissue.link(bot.services.redis, NEWCOMER, "newbie")
    key, info = await handout(bot, f"<@{NEWCOMER}>")
    pr = {"number": 77, "title": "Fix the parser", "body": "Fixes #1", "user": {"login": "newbie"},
          "html_url": "https://github.example/acme/widget/pull/77"}
    status, _ = await bot.webhook("pull_request", {"action": "opened", "pull_request": pr,
                                                   "repository": {"full_name": "acme/widget"}}, "pr-77")
    assert status == 200
    # The notice is a job of its own (the webhook only queues): it arrives shortly after.
    await bot.slack.wait_for(lambda: "opened PR #77 for #1" in bot.thread_of(info), what="the PR notice")
    # Opening the PR is activity of theirs: the clock starts again from it.
    opened = (await firstissue.Pool(bot.services.redis, "acme/widget").hold(1))["pr_at"]
    assert await firstissue.follow_up(bot.services, opened + 13 * 86400) == []
    assert await firstissue.follow_up(bot.services, opened + 14 * 86400) == ["nudged acme/widget#1"]


async def test_linking_yourself_needs_proof_and_a_login_has_one_owner(make_bot, remote, github, slack):
    """Anyone may link their own login, but only after showing a code the bot gave them on that GitHub
    account (profile bio or a public gist); nobody can claim a login someone else holds."""
    bot = await setup(make_bot, remote, github)
    github.users.update({"torvalds", "outsider-gh"})
    n = 0

    async def link(text, user):
        nonlocal n
        await ask(bot, text, user=user)
        n += 1
        return await last_response(bot, n)

    asked = await link(f"link <@{OUTSIDER}|me> torvalds", OUTSIDER)
    assert "Nothing was linked yet" in asked and "maintainer-bot-verify-" in asked
    code = asked.split("`")[1]
    assert await firstissue.linked_login(bot.services.redis, OUTSIDER) is None
    assert "Nothing was linked yet" in await link(f"link <@{OUTSIDER}|me> torvalds", OUTSIDER)   # not shown yet
    # Shown on another account than the one claimed: still no.
    github.bios["outsider-gh"] = code
    assert "Nothing was linked yet" in await link(f"link <@{OUTSIDER}|me> torvalds", OUTSIDER)
    # The real owner of the account shows it in a gist: linked.
    github.gists["torvalds"] = [{"description": f"slack link {code}", "files": {"x.txt": {}}}]
    assert "proved on GitHub" in await link(f"link <@{OUTSIDER}|me> torvalds", OUTSIDER)
    assert await firstissue.linked_login(bot.services.redis, OUTSIDER) == "torvalds"
    # Someone else claiming the same login is refused outright; a maintainer may move it.
    assert "already linked to someone else" in await link(f"link <@UOTHER001|o> torvalds", "UOTHER001")
    assert "confirmed by a maintainer" in await link(f"link <@{NEWCOMER}|n> torvalds", None)
    assert await firstissue.linked_login(bot.services.redis, OUTSIDER) is None
    assert await firstissue.login_owner(bot.services.redis, "TORVALDS") == NEWCOMER


# --- #20: fair clocks, newcomers only, mentors, the first merge ------------------------------------------------
DAY = 86400


def iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def comment(t: float, login: str) -> dict:
    return {"event": "commented", "created_at": iso(t), "user": {"login": login}, "actor": {"login": login},
            "body": "..."}


async def clocked(make_bot, remote, github, **firstissue_cfg):
    bot = await setup(make_bot, remote, github, firstissue={"nudge_after_days": 14, "return_after_days": 7,
                                                            **firstissue_cfg})
    clock = [1_800_000_000.0]
    bot.services.clock = lambda: clock[0]
    await pool_with(bot, 1)
    await firstissue.link(bot.services.redis, NEWCOMER, "newbie")
    key, info = await handout(bot, f"<@{NEWCOMER}>")
    assert info["status"] == "done", bot.thread_of(info)
    return bot, clock[0], info


async def test_the_clock_counts_only_the_newcomers_own_activity(make_bot, remote, github, slack):
    bot, t0, info = await clocked(make_bot, remote, github)
    events = github.timelines.setdefault("acme/widget", {}).setdefault(1, [])
    events.append(comment(t0 + 10 * DAY, "newbie"))               # theirs: the clock restarts here
    events.append(comment(t0 + 12 * DAY, "maintainer-bot"))       # the bot's: no effect
    events.append(comment(t0 + 13 * DAY, "someone-else"))         # another person's: no effect
    services = bot.services
    assert await firstissue.follow_up(services, t0 + 14 * DAY) == []         # only 4 quiet days of theirs
    assert await firstissue.follow_up(services, t0 + 23.9 * DAY) == []
    assert await firstissue.follow_up(services, t0 + 24 * DAY) == ["nudged acme/widget#1"]
    dm = [m for m in slack.messages.values() if m["channel"] == "DNEWBIE01"][-1]["text"]
    assert "you commented on #1" in dm and "14 days ago" in dm
    assert "no activity of theirs for 14 days (last: commented on #1" in bot.thread_of(info)
    events.append(comment(t0 + 26 * DAY, "someone-else"))         # still not theirs
    assert await firstissue.follow_up(services, t0 + 30.9 * DAY) == []
    assert await firstissue.follow_up(services, t0 + 31 * DAY) == ["returned acme/widget#1"]
    thread = bot.thread_of(info)
    assert "last activity was on" in thread and "(commented on #1)" in thread and "nothing came in the 7 days" in thread


async def test_a_commit_on_their_pr_after_the_nudge_stops_the_return(make_bot, remote, github, slack):
    bot, t0, info = await clocked(make_bot, remote, github)
    services = bot.services
    assert await firstissue.follow_up(services, t0 + 14 * DAY) == ["nudged acme/widget#1"]
    pool = firstissue.Pool(services.redis, "acme/widget")
    hold = await pool.hold(1)
    hold["pr"], hold["pr_at"] = 88, t0 + 1
    await pool.update_hold(1, hold)
    github.add_pull("acme/widget", 88, title="Fix", merge_commit_sha=None, merged=False, commits=[
        {"sha": "c" * 40, "author": {"login": "newbie"},
         "commit": {"message": "fix", "committer": {"date": iso(t0 + 16 * DAY)}}}])
    assert await firstissue.follow_up(services, t0 + 21 * DAY) == []           # pushed after the nudge
    assert (await pool.hold(1))["last_what"] == "pushed a commit to PR #88"
    assert "last activity" in await ask(bot, "list") and "pushed a commit to PR #88" in await ask(bot, "list")


async def test_a_pinned_issue_is_never_returned(make_bot, remote, github, slack):
    bot, t0, info = await clocked(make_bot, remote, github, pin_label="pinned")
    github.issues["acme/widget"][1]["labels"] = [{"name": "Pinned"}]
    services = bot.services
    assert await firstissue.follow_up(services, t0 + 14 * DAY) == ["nudged acme/widget#1"]
    for days in (21, 40, 400):
        assert await firstissue.follow_up(services, t0 + days * DAY) == []
    assert (await firstissue.Pool(services.redis, "acme/widget").hold(1))["user"] == NEWCOMER
    assert bot.thread_of(info).count("is labelled `pinned`, so it stays") == 1


async def test_a_contributor_above_the_threshold_is_refused(make_bot, remote, github, slack):
    bot = await setup(make_bot, remote, github, firstissue={"max_merged_prs": 2})
    await pool_with(bot, 1)
    await firstissue.link(bot.services.redis, NEWCOMER, "newbie")
    for n in (301, 302, 303):
        github.add_pull("acme/widget", n, title="x", merge_commit_sha="a" * 40)["user"]["login"] = "newbie"
    key, info = await handout(bot, f"<@{NEWCOMER}>")
    assert "has 3 merged PRs" in bot.thread_of(info) and "max_merged_prs` = 2" in bot.thread_of(info)
    assert github.issues["acme/widget"][1]["assignees"] == []
    github.pulls["acme/widget"][303]["merged"] = False                 # two merged: still a newcomer
    key, info = await handout(bot, f"<@{NEWCOMER}> --another")
    assert "Handed #1" in bot.thread_of(info)


async def test_mentors_rotate_within_capacity_and_are_told(make_bot, remote, github, slack):
    bot = await setup(make_bot, remote, github)
    github.add_issue("acme/widget", 4, "Small fix 4")
    await pool_with(bot, 1, 2, 3, 4)
    assert "mentors up to 1" in await ask(bot, "mentor add <@UMENTORA1|a> 1")
    assert "mentors up to 2" in await ask(bot, "mentor add <@UMENTORB1|b> 2")
    assert "not a capacity" in await ask(bot, "mentor add <@UMENTORB1|b> ²")
    people = ["UNEWA0001", "UNEWB0001", "UNEWC0001", "UNEWD0001"]
    mentors = []
    for i, person in enumerate(people):
        await firstissue.link(bot.services.redis, person, f"new{i}")
        key, info = await handout(bot, f"<@{person}>")
        text = bot.thread_of(info)
        mentors.append(next((m for m in ("UMENTORA1", "UMENTORB1") if f"mentor is <@{m}>" in text), ""))
    assert mentors == ["UMENTORA1", "UMENTORB1", "UMENTORB1", ""]        # in turn, within capacity; then none
    assert "No mentor has a free slot" in bot.thread_of(info)
    dms = [m["text"] for m in slack.messages.values() if m["channel"] == "DMENTORB1"]
    assert len(dms) == 2 and "You are mentoring <@UNEWB0001>" in dms[0]
    listing = await ask(bot, "mentors")
    assert "<@UMENTORA1>: 1/1" in listing and "<@UMENTORB1>: 2/2" in listing
    assert "mentor <@UMENTORA1>" in await ask(bot, "list")


async def test_the_first_merge_thanks_frees_the_mentor_and_offers_the_next(make_bot, remote, github, slack):
    bot = await setup(make_bot, remote, github)
    await pool_with(bot, 1, 2)
    await ask(bot, "mentor add <@UMENTORA1|a> 1")
    await firstissue.link(bot.services.redis, "UMENTORA1", "mentor-gh")
    await firstissue.link(bot.services.redis, NEWCOMER, "newbie")
    key, info = await handout(bot, f"<@{NEWCOMER}>")
    pr = github.add_pull("acme/widget", 77, title="Fix the parser", body="Fixes #1", merge_commit_sha=None,
                         merged=False)
    pr["user"]["login"] = "newbie"
    payload = {"action": "opened", "pull_request": pr, "repository": {"full_name": "acme/widget"}}
    assert (await bot.webhook("pull_request", payload, "pr-77-open"))[0] == 200
    await slack.wait_for(lambda: "Requested a review from <@UMENTORA1>" in bot.thread_of(info), what="the review")
    assert pr["requested_reviewers"] == [{"login": "mentor-gh"}]
    github.merge("acme/widget", 77, "d" * 40)
    payload = {"action": "closed", "pull_request": pr, "repository": {"full_name": "acme/widget"}}
    assert (await bot.webhook("pull_request", payload, "pr-77-merged"))[0] == 200
    await slack.wait_for(lambda: "Hand <@UNEWBIE01> their next issue?" in bot.thread_of(info), what="the offer")
    thread = bot.thread_of(info)
    assert "PR #77 for #1 is merged. Thank you, <@UNEWBIE01>" in thread
    assert any("Your slot is free again" in m["text"] for m in slack.messages.values() if m["channel"] == "DMENTORA1")
    assert "<@UMENTORA1>: 0/1" in await ask(bot, "mentors")
    assert "#1" not in await ask(bot, "list")                          # done: out of the pool
    offer = next(m for m in slack.thread(info["thread_ts"]) if "their next issue" in m["text"])
    assert await bot.click("firstissue_next", "", offer) == 200
    await slack.wait_for(lambda: any("Queued job" in e["text"] for e in slack.ephemerals), what="the next hand-out")
    nxt = next(e["text"] for e in slack.ephemerals if "Queued job" in e["text"]).split("`")[1]
    info2 = await bot.final(nxt)
    assert "Handed #2" in bot.thread_of(info2) and "mentor is <@UMENTORA1>" in bot.thread_of(info2)


def test_first_issue_thresholds_are_per_repo(remote):
    from core import config as config_mod

    data = config_dict(remote, firstissue={"nudge_after_days": 3, "pin_label": "keep"})
    data["repos"].append({"github": "acme/other", "clone_url": remote.url})
    data["firstissue"] = {"nudge_after_days": 20}
    cfg = config_mod.parse(data)
    assert cfg.firstissue_for(cfg.repo("acme/widget")).nudge_after_days == 3
    assert cfg.firstissue_for(cfg.repo("acme/widget")).pin_label == "keep"
    assert cfg.firstissue_for(cfg.repo("acme/other")).nudge_after_days == 20
    assert firstissue.periods(cfg, "acme/widget")[0] == 3 * DAY
