"""The web process end to end: signed Slack requests in, jobs through the real queue and worker, parent
messages and threads out on the fake Slack; health and metrics."""

from __future__ import annotations

import asyncio
import time
import urllib.parse

from aiohttp import ClientSession

from tests.conftest import CHANNEL, MAINTAINER, OUTSIDER, config_dict, sign_slack
from tests.gitrepo import numbered


def seed(remote):
    base = remote.commit("main", {"src/a.c": numbered(30), "README": "hello\n"}, "Initial")
    remote.branch("release/1.0", base)
    remote.commit("main", {"src/b.c": "new file\n"}, "Unrelated feature")
    return remote.commit("main", {"src/a.c": numbered(30).replace("line 5\n", "line five\n")},
                         "Fix line five\n\nLong explanation.\n\nSigned-off-by: Dev One <dev@example.com>")


async def test_slash_command_runs_a_backport_through_queue_and_worker(make_bot, remote, slack, github):
    fix = seed(remote)
    bot = await make_bot(config_dict(remote))
    started = time.monotonic()
    status, body = await bot.slash("/backport", f"1.0 {fix[:12]}")
    assert time.monotonic() - started < 3
    assert status == 200 and body["response_type"] == "ephemeral"
    assert "Queued job `bp-" in body["text"]
    key = body["text"].split("`")[1]
    info = await bot.final(key)
    assert info["status"] == "done"
    parent = slack.messages[info["thread_ts"]]
    assert parent["channel"] == CHANNEL and f"job `{key}`" in parent["text"] and "*done*" in parent["text"]
    assert parent["edits"] >= 3  # queued → stages → done, edited in place
    thread = bot.thread_of(info)
    assert "Resolved: 1 commit(s)" in thread and "Picked 1 commit(s) cleanly" in thread
    assert "Backport ready for review" in thread
    # GitHub: one PR into the release branch, labelled, with the contract's title.
    prs = [p for p in github.pulls["acme/widget"].values() if p["state"] == "open"]
    assert len(prs) == 1
    pr = prs[0]
    assert pr["title"] == "[Backport 1.0] Fix line five"
    assert pr["base"]["ref"] == "release/1.0" and pr["head"]["ref"] == f"backport/{fix[:10]}-to-release/1.0"
    assert github.labels["acme/widget"][pr["number"]] == ["backport"]
    for heading in ("## What changed", "## Original source", "## Target branch", "## Validation", "## Risk",
                    "## Files changed by an LLM"):
        assert heading in pr["body"]
    # The branch on the remote: one commit, original message kept, cherry-pick line before the trailers.
    branch_tip = remote.tip(f"backport/{fix[:10]}-to-release/1.0")
    message = remote.repo[branch_tip].message
    assert message.startswith("Fix line five\n\nLong explanation.\n\n(cherry picked from commit " + fix + ")\n\n"
                              "Signed-off-by:")
    assert [str(p) for p in remote.repo[branch_tip].parent_ids] == [remote.tip("release/1.0")]
    assert remote.files(branch_tip)["src/a.c"].count("line five") == 1


async def test_forged_and_stale_signatures_are_refused_and_nothing_is_queued(make_bot, remote, slack):
    fix = seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    status, _ = await bot.slash("/backport", f"1.0 {fix}", secret="not-the-secret")
    assert status == 401
    status, _ = await bot.slash("/backport", f"1.0 {fix}", ts=int(time.time()) - 3600)
    assert status == 401
    assert await bot.queued() == 0
    assert slack.parents() == []


async def test_missing_or_malformed_signature_headers_are_refused_not_errors(make_bot, remote):
    bot = await make_bot(config_dict(remote), worker=False)
    good = sign_slack("command=%2Fhelp")
    cases = [{}, {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": "v0=00"},
             {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": good["X-Slack-Signature"]},
             {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": "v0=00"},
             {"X-Slack-Request-Timestamp": "-5", "X-Slack-Signature": "v0=00"},
             {"X-Slack-Request-Timestamp": good["X-Slack-Request-Timestamp"], "X-Slack-Signature": ""}]
    async with ClientSession() as s:
        for headers in cases:
            async with s.post(f"{bot.url}/slack/events", data="command=%2Fhelp",
                              headers={"Content-Type": "application/x-www-form-urlencoded", **headers}) as r:
                assert r.status == 401, headers
    assert await bot.queued() == 0


async def test_a_replayed_signed_request_is_refused(make_bot, remote, slack):
    """A captured request sent again inside Slack's five-minute window has a valid signature: it queues nothing."""
    fix = seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    body = urllib.parse.urlencode({"command": "/backport", "text": f"1.0 {fix}", "user_id": MAINTAINER,
                                   "channel_id": CHANNEL, "team_id": "T0001", "trigger_id": "77.1",
                                   "response_url": f"{slack.url}/respond/1", "api_app_id": "A0001"})
    headers = sign_slack(body)
    async with ClientSession() as s:
        async with s.post(f"{bot.url}/slack/events", data=body, headers=headers) as r:
            assert r.status == 200 and "Queued job" in (await r.json())["text"]
        async with s.post(f"{bot.url}/slack/events", data=body, headers=headers) as r:
            assert r.status == 200 and "received before" in (await r.json())["text"]
    assert await bot.queued() == 1
    # A fresh request for the same thing is not a replay: it is answered (the job is already queued).
    _, answer = await bot.slash("/backport", f"1.0 {fix}")
    assert "Already in progress" in answer["text"]


async def test_unauthorised_and_malformed_commands_get_one_line_and_queue_nothing(make_bot, remote, slack):
    fix = seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    status, body = await bot.slash("/backport", f"1.0 {fix}", user=OUTSIDER)
    assert status == 200 and "maintainers only" in body["text"] and "\n" not in body["text"]
    status, body = await bot.slash("/backport", "1.0 not-a-sha")
    assert "is neither a commit SHA" in body["text"] and "Usage: /backport" in body["text"]
    status, body = await bot.slash("/backport", "")                 # nothing typed: the form opens instead
    assert status == 200 and not (isinstance(body, dict) and body.get("text"))
    await slack.wait_for(lambda: slack.views, what="the /backport form")
    status, body = await bot.slash("/backport", "1.0")
    assert "Usage: /backport" in body["text"]
    status, body = await bot.slash("/summarize", "what is this")
    assert "Usage: /summarize" in body["text"]
    assert await bot.queued() == 0
    assert slack.parents() == []


async def test_user_group_members_are_maintainers(make_bot, remote, slack):
    fix = seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    status, body = await bot.slash("/backport", f"1.0 {fix}", user="UGROUPM1")
    assert "Queued job" in body["text"]
    assert slack.count("usergroups.users.list") == 1
    await bot.slash("/backport", f"2.0 {fix}", user="UGROUPM1")
    assert slack.count("usergroups.users.list") == 1  # cached


async def test_same_request_twice_points_at_the_first_job(make_bot, remote, slack):
    fix = seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    from core.queue import job_info
    from jobs.worker import announce

    announcer = asyncio.create_task(announce(bot.services))   # posts parents; no job slot runs the job
    _, first = await bot.slash("/backport", f"1.0 {fix}")
    key = first["text"].split("`")[1]

    for _ in range(100):  # the parent is posted just after the ack
        if (await job_info(bot.services.redis, key)).get("thread_ts"):
            break
        await asyncio.sleep(0.05)
    _, second = await bot.slash("/backport", f"1.0 {fix}")
    assert "Already in progress as job `" + key in second["text"]
    assert "https://test.slack.com/archives/" in second["text"]
    assert len(slack.parents()) == 1
    assert await bot.queued() == 1
    announcer.cancel()


async def test_help_for_every_command(make_bot, remote):
    bot = await make_bot(config_dict(remote), worker=False)
    _, body = await bot.slash("/help", "")
    for name in ("/backport", "/summarize", "/firstissue", "/provenance", "/adversarial"):
        assert name in body["text"]
        _, one = await bot.slash(name, "help", user=OUTSIDER)
        assert one["text"].startswith(f"*{name}")


async def test_unconfigured_commands_say_what_is_missing(make_bot, remote):
    bot = await make_bot(config_dict(remote), worker=False)
    _, body = await bot.slash("/adversarial", "#12 50")
    assert "Adversarial runs are not configured: add an [adversarial] table" in body["text"]
    _, body = await bot.slash("/provenance", "PR#12")
    assert "Provenance checks are not configured" in body["text"]
    assert await bot.queued() == 0


async def test_healthz_and_metrics(make_bot, remote):
    bot = await make_bot(config_dict(remote), worker=False)
    await bot.slash("/backport", "1.0 nothex")
    async with ClientSession() as s:
        async with s.get(f"{bot.url}/healthz") as r:
            assert r.status == 200 and await r.text() == "ok"
        async with s.get(f"{bot.url}/metrics") as r:
            text = await r.text()
    assert 'bot_commands_total{command="backport",outcome="usage"} 1' in text
    assert "bot_queue_up 1" in text
    assert 'bot_ack_seconds_count{command="backport"} 1.0' in text          # a histogram of ack latency
    assert 'bot_queue_jobs{queue="normal",state="queued"} 0.0' in text


async def test_a_command_from_a_conversation_the_bot_cannot_post_in_ends_failed_and_says_so(make_bot, remote, slack):
    """A private channel the bot is not in (Slack answers channel_not_found): the job does not die on every
    attempt with nobody told; it ends failed in its record and answers through the command's response_url."""
    from core.queue import job_info

    fix = seed(remote)
    slack.outside.add("CPRIVATE1")
    bot = await make_bot(config_dict(remote))
    _, body = await bot.slash("/backport", f"1.0 {fix}", channel="CPRIVATE1")
    key = body["text"].split("`")[1]
    for _ in range(400):
        info = await job_info(bot.services.redis, key)
        if info.get("status") == "failed":
            break
        await asyncio.sleep(0.05)
    assert info["status"] == "failed" and "can't post" in info["detail"]
    await slack.wait_for(lambda: slack.responses, what="the response_url answer")
    assert "I can't post in this conversation" in slack.responses[0]["text"] and key in slack.responses[0]["text"]
    job = await bot.services.queue.job(key)
    assert job.status.value == "complete" and job.attempts == 1          # not retried into the ground


async def test_unknown_events_and_interactions_are_acknowledged_quietly(make_bot, remote):
    import json

    seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    bodies = [
        json.dumps({"type": "event_callback", "team_id": "T0001", "api_app_id": "A0001", "event_id": "Ev1",
                    "event": {"type": "reaction_added", "user": "U1", "reaction": "eyes"}}),
        "payload=" + urllib.parse.quote(json.dumps({"type": "block_actions", "team": {"id": "T0001"},
                                                    "user": {"id": "U1"}, "api_app_id": "A0001",
                                                    "actions": [{"action_id": "someone_elses", "value": "x"}]})),
        "payload=" + urllib.parse.quote(json.dumps({"type": "shortcut", "team": {"id": "T0001"},
                                                    "user": {"id": "U1"}, "callback_id": "nothing"})),
    ]
    async with ClientSession() as s:
        for body in bodies:
            headers = sign_slack(body)
            if body.startswith("{"):
                headers["Content-Type"] = "application/json"
            async with s.post(f"{bot.url}/slack/events", data=body, headers=headers) as r:
                assert r.status == 200, (body[:40], r.status, await r.text())
    assert await bot.queued() == 0


async def test_start_up_checks_the_bot_can_post_where_it_must(make_bot, remote, slack):
    from bot.app import CHANNELS, check_channels

    seed(remote)
    data = config_dict(remote)
    data["slack"]["security_channel"] = "GSECRET01"
    slack.outside.add("GSECRET01")
    bot = await make_bot(data, worker=False)
    found = await check_channels(bot.services, bot.client)
    assert found["notify_channel"][1].startswith("ok")
    assert "cannot be read (channel_not_found): invite the bot" in found["security_channel"][1]
    async with ClientSession() as s:
        async with s.get(f"{bot.url}/healthz") as r:
            text = await r.text()
    assert r.status == 200 and "security_channel GSECRET01: cannot be read" in text
    CHANNELS.clear()
