"""Forms: `/backport` with no arguments opens a modal whose submission queues the very job the typed command
would; a bad submission is refused in the form; the "Summarize this PR" message shortcut queues /summarize for
the PR a message links to."""

from __future__ import annotations

import json
import urllib.parse

from aiohttp import ClientSession

from core.queue import job_info
from tests.conftest import CHANNEL, MAINTAINER, config_dict, sign_slack
from tests.gitrepo import numbered

OUTSIDER = "UOUTSIDE1"


async def interact(bot, payload: dict) -> tuple[int, str]:
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    async with ClientSession() as s:
        async with s.post(f"{bot.url}/slack/events", data=body, headers=sign_slack(body)) as r:
            return r.status, await r.text()


def submission(view: dict, releases: list[str], refs: str, user: str = MAINTAINER) -> dict:
    return {"type": "view_submission", "team": {"id": "T0001"}, "user": {"id": user}, "api_app_id": "A0001",
            "token": "legacy", "trigger_id": "9.9.9",
            "view": dict(view, id="V0001", hash="h1", state={"values": {
                "releases": {"releases": {"type": "multi_static_select",
                                          "selected_options": [{"value": r} for r in releases]}},
                "refs": {"refs": {"type": "plain_text_input", "value": refs}}}})}


async def test_the_backport_form_queues_the_same_job_as_the_command(make_bot, remote, slack):
    base = remote.commit("main", {"a.c": numbered(20)}, "Initial")
    remote.branch("release/1.0", base)
    fix = remote.commit("main", {"a.c": numbered(20).replace("line 3\n", "line three\n")}, "Fix three")
    bot = await make_bot(config_dict(remote), worker=False)
    status, body = await bot.slash("/backport", "")
    assert status == 200 and not (isinstance(body, dict) and body.get("text"))
    await slack.wait_for(lambda: slack.views, what="the modal")
    view = slack.views[-1]
    assert view["callback_id"] == "backport_modal" and view["private_metadata"] == CHANNEL
    options = [o["value"] for o in view["blocks"][0]["element"]["options"]]
    assert options == ["2.0", "1.0"]                                   # newest first

    status, text = await interact(bot, submission(view, ["1.0"], fix))
    assert status == 200 and "errors" not in text
    await slack.wait_for(lambda: any("Queued job" in e["text"] for e in slack.ephemerals), what="the answer")
    key = next(e["text"] for e in slack.ephemerals if "Queued job" in e["text"]).split("`")[1]
    info = await job_info(bot.services.redis, key)
    assert json.loads(info["params"])["refs"] == [fix] and info["channel"] == CHANNEL
    _, typed = await bot.slash("/backport", f"1.0 {fix}")
    assert f"Already in progress as job `{key}`" in typed["text"]     # the very same job


async def test_a_bad_form_is_refused_in_the_form_and_queues_nothing(make_bot, remote, slack):
    remote.commit("main", {"a.c": "x\n"}, "Initial")
    bot = await make_bot(config_dict(remote), worker=False)
    await bot.slash("/backport", "")
    await slack.wait_for(lambda: slack.views, what="the modal")
    view = slack.views[-1]
    status, text = await interact(bot, submission(view, ["1.0"], "not-a-ref"))
    answer = json.loads(text)
    assert answer["response_action"] == "errors" and "not-a-ref" in answer["errors"]["refs"]
    status, text = await interact(bot, submission(view, ["1.0"], "abc1234", user=OUTSIDER))
    assert "maintainers only" in json.loads(text)["errors"]["refs"]
    forged = dict(view, private_metadata="<!channel>")
    status, text = await interact(bot, submission(forged, ["1.0"], "abc1234"))
    assert "lost its channel" in json.loads(text)["errors"]["refs"]
    assert await bot.queued() == 0


async def test_summarize_this_pr_from_a_message(make_bot, remote, slack, github):
    from tests.jobs.test_summarize import small_pr

    remote.commit("main", {"a.c": "x\n"}, "Initial")
    small_pr(github, number=10)
    bot = await make_bot(config_dict(remote), worker=False)
    shortcut = {"type": "message_action", "callback_id": "summarize_pr", "team": {"id": "T0001"},
                "user": {"id": OUTSIDER}, "channel": {"id": CHANNEL}, "api_app_id": "A0001", "token": "legacy",
                "trigger_id": "1.2.3", "response_url": f"{slack.url}/respond/7", "message_ts": "1.1",
                "message": {"type": "message", "ts": "1.1",
                            "text": "Could someone look at <https://github.com/acme/widget/pull/10|this one>?"}}
    assert (await interact(bot, shortcut))[0] == 200
    await slack.wait_for(lambda: slack.ephemerals, what="the answer")
    answer = slack.ephemerals[-1]["text"]
    assert "Queued job" in answer, answer
    info = await job_info(bot.services.redis, answer.split("`")[1])
    assert info["kind"] == "summarize" and json.loads(info["params"])["pr"] == 10
    shortcut["message"]["text"] = "no link here, just <!channel> noise"
    await interact(bot, shortcut)
    await slack.wait_for(lambda: len(slack.ephemerals) >= 2, what="the second answer")
    assert "links no pull request" in slack.ephemerals[-1]["text"]
