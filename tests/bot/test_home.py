"""The App Home tab through the real web app: app_home_opened publishes each person's view (the fake Slack
checks views.publish as Slack does and records it); a maintainer sees escalations with Retry and Dismiss, jobs
in flight and counts; a newcomer sees the issue they hold; an outsider sees only their own jobs; the Home is
published again when the person's jobs change."""

from __future__ import annotations

import json

from aiohttp import ClientSession

from jobs import firstissue
from tests.conftest import MAINTAINER, config_dict, sign_slack
from tests.gitrepo import numbered

OUTSIDER = "UOUTSIDE1"
NEWCOMER = "UNEWBIE01"


async def open_home(bot, user: str) -> str:
    before = bot.slack.homes.get(user)
    body = json.dumps({"type": "event_callback", "team_id": "T0001", "api_app_id": "A0001",
                       "event_id": f"Ev{user}{id(before)}", "event_time": 1,
                       "event": {"type": "app_home_opened", "user": user, "channel": "D0001", "tab": "home"}})
    headers = {**sign_slack(body), "Content-Type": "application/json"}
    async with ClientSession() as s:
        async with s.post(f"{bot.url}/slack/events", data=body, headers=headers) as r:
            assert r.status == 200
    await bot.slack.wait_for(lambda: bot.slack.homes.get(user) is not before, what="the Home view")
    return bot.slack.home_text(user)


def seed(remote):
    base = remote.commit("main", {"src/a.c": numbered(40)}, "Initial")
    remote.branch("release/1.0", base)
    remote.commit("release/1.0", {"src/a.c": numbered(40).replace("line 5\n", "line 5 (release)\n")}, "Release")
    return remote.commit("main", {"src/a.c": numbered(40).replace("line 5\n", "line five <!channel>\n")},
                         "Fix five <!here>")


async def test_the_outsider_the_maintainer_and_the_newcomer_each_see_their_own(make_bot, remote, github):
    fix = seed(remote)
    bot = await make_bot(config_dict(remote))
    _, body = await bot.slash("/backport", f"1.0 {fix}")
    key = body["text"].split("`")[1]
    info = await bot.final(key)
    assert info["status"] == "needs a maintainer"          # a conflict, and no model key

    outsider = await open_home(bot, OUTSIDER)
    assert "Your jobs" in outsider and "None lately" in outsider
    assert "Waiting for a person" not in outsider and key not in outsider and "pool" not in outsider

    mine = await open_home(bot, MAINTAINER)
    assert "Your jobs" in mine and key in mine and "*needs a maintainer*" in mine
    assert "Waiting for a person* (1)" in mine and "In flight* (0)" in mine
    assert "First-issue pool: *0*" in mine and "Provenance this week: *0*" in mine
    assert "<!channel>" not in json.dumps(bot.slack.homes[MAINTAINER])
    buttons = [e["action_id"] for b in bot.slack.homes[MAINTAINER]["blocks"] if b.get("type") == "actions"
               for e in b["elements"]]
    assert buttons == ["job_retry", "job_dismiss", "home_open_thread"]

    # A newcomer holding an issue sees it, and only that.
    pool = firstissue.Pool(bot.services.redis, "acme/widget")
    await pool.add(7, "a small parser fix", MAINTAINER, 1_700_000_000)
    await pool.claim(7, {"user": NEWCOMER, "login": "newbie", "by": MAINTAINER, "since": 1_700_000_000,
                         "key": "fi-0", "claim": "x", "nudged": 0, "pr": 0})
    newcomer = await open_home(bot, NEWCOMER)
    assert "Your first issue" in newcomer and "acme/widget#7" in newcomer and "a small parser fix" in newcomer
    assert "since 2023-11-14" in newcomer and "Waiting for a person" not in newcomer
    mine = await open_home(bot, MAINTAINER)
    assert "First-issue pool: *1* issue(s), 1 handed out" in mine


async def test_dismiss_in_the_home_updates_it_and_a_finished_job_refreshes_it(make_bot, remote, github):
    fix = seed(remote)
    bot = await make_bot(config_dict(remote))
    _, body = await bot.slash("/backport", f"1.0 {fix}")
    key = body["text"].split("`")[1]
    await bot.final(key)
    await open_home(bot, MAINTAINER)
    view = bot.slack.homes[MAINTAINER]
    payload = {"type": "block_actions", "team": {"id": "T0001"}, "user": {"id": MAINTAINER}, "api_app_id": "A0001",
               "token": "legacy", "trigger_id": "1.2.3", "container": {"type": "view", "view_id": "V0001"},
               "view": dict(view, id="V0001"),
               "actions": [{"action_id": "job_dismiss", "block_id": f"esc_{key}", "type": "button",
                            "value": next(e["value"] for b in view["blocks"] if b.get("type") == "actions"
                                          for e in b["elements"] if e["action_id"] == "job_dismiss"),
                            "action_ts": "1.1"}]}
    import urllib.parse

    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    async with ClientSession() as s:
        async with s.post(f"{bot.url}/slack/events", data=body, headers=sign_slack(body)) as r:
            assert r.status == 200
    await bot.slack.wait_for(lambda: "Waiting for a person* (0)" in bot.slack.home_text(MAINTAINER),
                             what="the Home without the escalation")
    assert "*dismissed*" in bot.slack.home_text(MAINTAINER)

    # A new job of this maintainer: the Home is published again on its own once the job is done.
    clean = remote.commit("main", {"README": "docs\n"}, "Docs")
    _, body = await bot.slash("/backport", f"1.0 {clean}")
    key2 = body["text"].split("`")[1]
    await bot.final(key2)
    await bot.slack.wait_for(lambda: key2 in bot.slack.home_text(MAINTAINER)
                             and "*done*" in bot.slack.home_text(MAINTAINER), timeout=20,
                             what="the Home refreshed by the job")
    publishes = [c for c in bot.slack.calls if c[0] == "views.publish"]
    assert len(publishes) < 12                   # refreshed, not flooded
