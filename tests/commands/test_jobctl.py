"""The Retry and Dismiss buttons on an escalation, clicked through signed Slack block_actions requests."""

from __future__ import annotations

import copy

from tests.conftest import OUTSIDER, config_dict


def seed_conflict(remote):
    base = remote.commit("main", {"a.txt": "one\ntwo\nthree\n"}, "Initial")
    remote.branch("release/1.0", base)
    remote.commit("release/1.0", {"a.txt": "one\nTWO on release\nthree\n"}, "Release-only change")
    return remote.commit("main", {"a.txt": "one\ntwo, fixed\nthree\n"}, "Fix two")


def escalation(slack, info):
    """The latest escalation with buttons, as the user's client shows it (a copy: later edits don't reach it)."""
    msgs = [m for m in slack.thread(info["thread_ts"]) if any(b.get("type") == "actions" for b in m["blocks"])]
    return copy.deepcopy(msgs[-1]) if msgs else None


def escalations(slack, info) -> int:
    return sum(1 for m in slack.thread(info["thread_ts"]) if "A maintainer is needed" in m["text"])


async def test_retry_then_dismiss(make_bot, remote, slack):
    fix = seed_conflict(remote)
    bot = await make_bot(config_dict(remote))
    _, body = await bot.slash("/backport", f"1.0 {fix}")
    key = body["text"].split("`")[1]
    info = await bot.final(key)
    assert info["status"] == "needs a maintainer"
    message = escalation(slack, info)
    assert "`a.txt`" in bot.thread_of(info)
    assert "git cherry-pick -x " + fix in bot.thread_of(info)
    # An outsider cannot retry.
    assert await bot.click("job_retry", key, message, user=OUTSIDER) == 200
    await slack.wait_for(lambda: any("only maintainers" in e["text"] for e in slack.ephemerals), what="refusal")
    # Retry twice quickly: one new run.
    assert await bot.click("job_retry", key, message) == 200
    await bot.click("job_retry", key, message)
    await slack.wait_for(lambda: not any(b.get("type") == "actions" for b in slack.messages[message["ts"]]["blocks"]),
                         what="buttons off")
    assert "Retrying job" in slack.messages[message["ts"]]["blocks"][-1]["text"]["text"]
    await slack.wait_for(lambda: escalations(slack, info) == 2, what="second escalation")
    info = await bot.final(key)
    assert info["status"] == "needs a maintainer" and info["run"] == "2"
    assert bot.thread_of(info).count("asked for a retry") == 1
    # The first escalation's button belongs to run 1: pressed now, it does nothing and says why.
    await bot.click("job_retry", key, message)
    await slack.wait_for(lambda: any("has run again" in e["text"] for e in slack.ephemerals), what="stale button")
    assert (await bot.final(key))["run"] == "2"
    # Dismiss: once, the parent says so, the buttons go.
    second = escalation(slack, info)
    await bot.click("job_dismiss", key, second)
    await bot.click("job_dismiss", key, second)
    await slack.wait_for(lambda: "*dismissed*" in slack.messages[info["thread_ts"]]["text"], what="dismissed parent")
    await slack.wait_for(lambda: any("already dismissed" in e["text"] for e in slack.ephemerals), what="second click")
    assert bot.thread_of(info).count("Dismissed by") == 1
    assert not any(b.get("type") == "actions" for b in slack.messages[second["ts"]]["blocks"])
