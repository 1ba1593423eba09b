"""Every job kind runs as checkpointed stages: a worker SIGKILLed in the middle of /summarize, /provenance or
/adversarial is replaced, and the resumed job repeats no model call, no check run and no post that a finished
stage already made. Each kill lands right after the job's first report went out (its answer lost on the way
back), which is after every model call."""

from __future__ import annotations

import json

from tests.conftest import env_for
from tests.faults.test_kills import kill_and_recover
from tests.fakes.anthropic import text
from tests.jobs import test_adversarial as adv
from tests.jobs import test_provenance as prov
from tests.jobs.test_summarize import SUMMARY, small_pr


def lose_the_answer_to(slack, fragment: str):
    """The post whose text has `fragment` is made, and its answer held back past the kill."""
    slack.linger_when = lambda name, args: 4 if name == "chat.postMessage" and fragment in args.get("text", "") else 0

    async def reached(key: str) -> None:
        await slack.wait_for(lambda: any(fragment in p.get("text", "") for p in slack.payloads("chat.postMessage")),
                             timeout=120, what=f"the post with {fragment!r}")
        slack.linger_when = None
    return reached


def posts_with(slack, fragment: str) -> int:
    return sum(fragment in m["text"] for m in slack.messages.values())


async def test_summarize_killed_after_the_model_answered(tmp_path, make_bot, remote, slack, github, anthropic,
                                                         redis_url):
    small_pr(github)
    anthropic.reply(text(json.dumps(SUMMARY)))
    anthropic.default = lambda body: text(json.dumps({"summary": "A SECOND CALL: must not happen"}))
    from tests.conftest import config_dict

    reached = lose_the_answer_to(slack, "*Summary*")
    _, info, _ = await kill_and_recover(tmp_path, make_bot, config_dict(remote), "PR#10", reached,
                                        env_for(tmp_path, slack, github, anthropic, redis_url),
                                        command="/summarize", anthropic=anthropic)
    assert len(anthropic.requests) == 1                        # the answer was checkpointed, not asked again
    assert posts_with(slack, "*Summary*") == 1 and posts_with(slack, "*Digest*") == 1
    assert posts_with(slack, "*Coverage*") == 1 and posts_with(slack, "A SECOND CALL") == 0
    assert len(slack.parents()) == 1


async def test_provenance_killed_after_the_verdict_went_out(tmp_path, make_bot, slack, github, anthropic,
                                                            redis_url):
    w = prov.World(tmp_path / "w")
    base, head = w.pr("feature", {"src/replication.c": prov.rebrand(w.u1_code)}, "Replica cache")
    prov.open_pr(w, github, 7, head, "Add a replica cache")
    anthropic.default = lambda body: [{"type": "text", "text": json.dumps(
        {"assessment": "derived", "why": "same statements in the same order"})}]
    asked = []

    async def reached(key: str) -> None:
        await lose(key)
        asked.append(len(anthropic.requests))

    lose = lose_the_answer_to(slack, "*Provenance: suspect*")
    _, info, _ = await kill_and_recover(tmp_path, make_bot, prov.bot_config(w), "PR#7", reached,
                                        env_for(tmp_path, slack, github, anthropic, redis_url),
                                        command="/provenance", anthropic=anthropic)
    assert asked[0] >= 1 and len(anthropic.requests) == asked[0]    # no second look asked twice
    assert len([r for r in github.check_runs if r["name"] == "provenance"]) == 1
    assert posts_with(slack, "*Provenance: suspect*") == 1
    assert posts_with(slack, "Claude's second look") == asked[0]


async def test_adversarial_killed_while_reporting(tmp_path, make_bot, remote, slack, github, anthropic, redis_url):
    anthropic.default = lambda body: text(json.dumps({"attacks": [
        {"why": "negative offset", "commands": [["SET", "k", "v"], ["SETRANGE", "k", "-5", "zz"]]}]}))
    data = adv.setup(remote, github, buggy=True)
    asked = []

    async def reached(key: str) -> None:
        await lose(key)
        asked.append(len(anthropic.requests))

    lose = lose_the_answer_to(slack, "*Adversarial finding")
    _, info, _ = await kill_and_recover(tmp_path, make_bot, data, "PR#21 30", reached,
                                        env_for(tmp_path, slack, github, anthropic, redis_url),
                                        command="/adversarial", anthropic=anthropic)
    reports = adv.private(slack)
    assert len(reports) == len({r.split("*")[3] for r in reports}) >= 1, reports   # each finding once
    assert asked[0] >= 1 and len(anthropic.requests) == asked[0]          # no attack round asked again
    assert len([r for r in github.check_runs if r["name"] == "adversarial"]) == 1


async def test_firstissue_killed_after_the_dm_went_out(tmp_path, make_bot, remote, slack, github, redis_url):
    from core.store import connect
    from jobs import firstissue
    from tests.conftest import config_dict
    from tests.jobs.test_firstissue import NEWCOMER, seed

    seed(github)
    redis = connect(redis_url)
    try:
        for n in (1, 2):
            await firstissue.Pool(redis, "acme/widget").add(n, f"note {n}", "UMAINT01", 0)
        await firstissue.link(redis, NEWCOMER, "newbie")
    finally:
        await redis.aclose()
    reached = lose_the_answer_to(slack, "welcome!")
    _, info, _ = await kill_and_recover(tmp_path, make_bot, config_dict(remote), f"<@{NEWCOMER}|newbie>", reached,
                                        env_for(tmp_path, slack, github, None, redis_url), command="/firstissue")
    assert github.issues["acme/widget"][1]["assignees"] == [{"login": "newbie"}]
    assert github.issues["acme/widget"][2]["assignees"] == []          # no second issue handed out
    assert posts_with(slack, "welcome!") == 1 and posts_with(slack, "Handed #1") == 1
