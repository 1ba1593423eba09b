"""`POST /github/webhook`: signatures, duplicate deliveries, and the backport triggers (label, comment)."""

from __future__ import annotations

import asyncio

from tests.bot.test_app import seed
from tests.conftest import NOTIFY, config_dict


def merged_pr_payload(number: int, merge_sha: str, action: str = "labeled", label: str = "backport 1.0") -> dict:
    return {"action": action, "label": {"name": label}, "sender": {"login": "maint"},
            "repository": {"full_name": "acme/widget"},
            "pull_request": {"number": number, "merged": True, "labels": [{"name": label}],
                             "merge_commit_sha": merge_sha}}


async def test_unsigned_or_forged_deliveries_are_refused(make_bot, remote):
    seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    payload = merged_pr_payload(7, "0" * 40)
    assert (await bot.webhook("pull_request", payload, "d-1", signature=""))[0] == 401
    assert (await bot.webhook("pull_request", payload, "d-2", secret="wrong"))[0] == 401
    assert (await bot.webhook("pull_request", payload, "d-3", signature="sha1=abc"))[0] == 401
    assert await bot.queued() == 0


async def test_backport_label_on_a_merged_pr_runs_a_backport_once(make_bot, remote, github, slack):
    fix = seed(remote)
    github.add_pull("acme/widget", 7, title="Fix line five", merge_commit_sha=fix,
                    commits=[{"sha": fix, "commit": {"message": "Fix line five"}}])
    github.permissions["acme/widget"] = {"maint": "maintain"}
    bot = await make_bot(config_dict(remote))
    status, body = await bot.webhook("pull_request", merged_pr_payload(7, fix), "delivery-1")
    assert status == 200 and '"queued": ["bp-' in body
    key = body.split('"')[3]
    status, body = await bot.webhook("pull_request", merged_pr_payload(7, fix), "delivery-1")
    assert status == 200 and "duplicate" in body
    # The same signed body under another delivery id is a replay: acted on once as well.
    status, body = await bot.webhook("pull_request", merged_pr_payload(7, fix), "delivery-other")
    assert status == 200 and "duplicate" in body
    info = await bot.final(key)
    assert info["status"] == "done" and info["channel"] == NOTIFY
    prs = [p for p in github.pulls["acme/widget"].values() if p["head"]["ref"] == "backport/pr7-to-release/1.0"]
    assert len(prs) == 1 and prs[0]["title"] == "[Backport 1.0] Fix line five"
    assert "Backport to `release/1.0`" in github.comments["acme/widget"][7][0]["body"]
    assert len(slack.parents(NOTIFY)) == 1


async def test_backport_comment_needs_write_access(make_bot, remote, github):
    fix = seed(remote)
    github.add_pull("acme/widget", 8, title="Fix", merge_commit_sha=fix)
    github.permissions["acme/widget"] = {"writer": "write", "reader": "read"}
    bot = await make_bot(config_dict(remote), worker=False)

    def comment(login, text):
        return {"action": "created", "repository": {"full_name": "acme/widget"},
                "issue": {"number": 8, "state": "closed",
                          "pull_request": {"url": "x", "merged_at": "2026-11-30T00:00:00Z"}},
                "comment": {"body": text, "user": {"login": login}}}

    status, body = await bot.webhook("issue_comment", comment("reader", "/backport 1.0"), "c-1")
    assert status == 200 and '"queued": []' in body
    status, body = await bot.webhook("issue_comment", comment("writer", "LGTM\n/backport 1.0,2.0"), "c-2")
    assert status == 200 and body.count("bp-") == 2
    status, body = await bot.webhook("issue_comment", comment("writer", "please /backport 1.0 later"), "c-3")
    assert '"queued": []' in body


async def test_events_for_unknown_repos_and_unmerged_prs_are_ignored(make_bot, remote):
    seed(remote)
    bot = await make_bot(config_dict(remote), worker=False)
    payload = merged_pr_payload(9, "0" * 40)
    payload["pull_request"]["merged"] = False
    assert '"queued": []' in (await bot.webhook("pull_request", payload, "u-1"))[1]
    payload = merged_pr_payload(9, "0" * 40)
    payload["repository"]["full_name"] = "someone/else"
    assert '"queued": []' in (await bot.webhook("pull_request", payload, "u-2"))[1]
    status, _ = await bot.webhook("ping", {"zen": "hi"}, "u-3")
    assert status == 200


async def test_a_label_needs_a_writer_and_a_404_is_a_no(make_bot, remote, github):
    """Triage rights are enough to set labels: the label asks for a writer like a comment does. GitHub's 404
    for an unknown login means no (answered 200, nothing queued), not a failed delivery."""
    fix = seed(remote)
    github.add_pull("acme/widget", 7, title="Fix", merge_commit_sha=fix)
    github.permissions["acme/widget"] = {"triager": "triage"}
    github.no_such_users.add("ghost")
    bot = await make_bot(config_dict(remote), worker=False)
    for login, delivery in (("triager", "t-1"), ("ghost", "t-2")):
        payload = merged_pr_payload(7, fix)
        payload["sender"]["login"] = login
        status, body = await bot.webhook("pull_request", payload, delivery)
        assert status == 200 and "bp-" not in body, (login, body)
    bad = merged_pr_payload(7, fix, label="backport ../main")
    github.permissions["acme/widget"]["maint"] = "write"
    status, body = await bot.webhook("pull_request", bad, "t-3")
    assert status == 200 and '"queued": []' in body
    assert await bot.queued() == 0


async def test_a_github_outage_leaves_the_delivery_free_for_redelivery(make_bot, remote, github):
    fix = seed(remote)
    github.add_pull("acme/widget", 7, title="Fix", merge_commit_sha=fix)
    github.permissions["acme/widget"] = {"maint": "write"}
    github.fail("permission", status=502, times=10, body='{"message": "Bad Gateway"}')
    bot = await make_bot(config_dict(remote), worker=False)
    status, _ = await bot.webhook("pull_request", merged_pr_payload(7, fix), "r-1")
    assert status == 502 and await bot.queued() == 0
    github.failures.pop("permission", None)                                                # GitHub is back
    status, body = await bot.webhook("pull_request", merged_pr_payload(7, fix), "r-1")     # GitHub redelivers
    assert status == 200 and "bp-" in body


async def test_form_encoded_deliveries_and_stale_ones(make_bot, remote, github):
    """GitHub's default content type for repository hooks is form encoding; a signed delivery whose event is
    days old (a replay after the seen-mark expired) is ignored."""
    import json
    import urllib.parse

    from aiohttp import ClientSession

    from tests.conftest import sign_github

    fix = seed(remote)
    github.add_pull("acme/widget", 7, title="Fix", merge_commit_sha=fix)
    github.permissions["acme/widget"] = {"maint": "write"}
    bot = await make_bot(config_dict(remote), worker=False)

    async def post(payload, delivery):
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery,
                   "Content-Type": "application/x-www-form-urlencoded", "X-Hub-Signature-256": sign_github(body)}
        async with ClientSession() as s:
            async with s.post(f"{bot.url}/github/webhook", data=body, headers=headers) as r:
                return r.status, await r.text()

    payload = merged_pr_payload(7, fix)
    payload["pull_request"]["updated_at"] = "2020-01-01T00:00:00Z"
    status, body = await post(payload, "f-1")
    assert status == 200 and "stale" in body
    payload["pull_request"]["updated_at"] = None
    status, body = await post(payload, "f-2")
    assert status == 200 and "bp-" in body


async def test_a_slack_outage_during_a_pr_notice_loses_no_provenance_check(make_bot, remote, github, slack):
    """The PR-opened notice is a job: Slack failing cannot fail the delivery after it was marked seen."""
    seed(remote)
    data = config_dict(remote)
    data["provenance"] = {"upstream": str(remote.path), "tainted": ["main"]}
    slack.fail("chat.postMessage", times=100)
    bot = await make_bot(data, worker=False)
    payload = {"action": "opened", "repository": {"full_name": "acme/widget"}, "sender": {"login": "newbie"},
               "pull_request": {"number": 12, "title": "Fix #3", "body": "", "user": {"login": "newbie"},
                                "head": {"sha": "a" * 40}}}
    status, body = await bot.webhook("pull_request", payload, "o-1")
    assert status == 200 and "prov-" in body and "pro-" in body



async def test_a_comment_before_merge_is_remembered_and_runs_when_the_pr_merges(make_bot, remote, github, slack):
    fix = seed(remote)
    github.add_pull("acme/widget", 9, title="Fix five", merge_commit_sha=fix,
                    commits=[{"sha": fix, "commit": {"message": "Fix line five"}}])
    github.permissions["acme/widget"] = {"writer": "write"}
    bot = await make_bot(config_dict(remote))
    early = {"action": "created", "repository": {"full_name": "acme/widget"},
             "issue": {"number": 9, "state": "open", "pull_request": {"url": "x", "merged_at": None}},
             "comment": {"body": "/backport 1.0", "user": {"login": "writer"}}}
    status, body = await bot.webhook("issue_comment", early, "e-1")
    assert status == 200 and "bp-" not in body and "ghr-" in body
    await github.wait_for(lambda: github.comments.get("acme/widget", {}).get(9), what="the reply on the PR")
    assert "I will backport #9 to `1.0` when it merges" in github.comments["acme/widget"][9][0]["body"]
    assert slack.parents() == []                                 # nothing in Slack yet
    merged = {"action": "closed", "repository": {"full_name": "acme/widget"}, "sender": {"login": "writer"},
              "pull_request": {"number": 9, "merged": True, "labels": [], "merge_commit_sha": fix}}
    status, body = await bot.webhook("pull_request", merged, "e-2")
    assert status == 200 and "bp-" in body
    info = await bot.final(body.split('"')[3])
    assert info["status"] == "done"


async def test_asking_again_after_the_backport_exists_answers_once_without_a_thread(make_bot, remote, github,
                                                                                   slack):
    fix = seed(remote)
    github.add_pull("acme/widget", 7, title="Fix line five", merge_commit_sha=fix,
                    commits=[{"sha": fix, "commit": {"message": "Fix line five"}}])
    github.permissions["acme/widget"] = {"maint": "write"}
    bot = await make_bot(config_dict(remote))
    status, body = await bot.webhook("pull_request", merged_pr_payload(7, fix), "x-1")
    info = await bot.final(body.split('"')[3])
    assert info["status"] == "done"
    threads = len(slack.parents())
    again = {"action": "created", "repository": {"full_name": "acme/widget"},
             "issue": {"number": 7, "state": "closed", "pull_request": {"url": "x", "merged_at": "2026-11-30T00:00:00Z"}},
             "comment": {"body": "/backport 1.0", "user": {"login": "maint"}}}
    for delivery in ("x-2", "x-3"):
        again["comment"]["body"] += " "                          # a new comment each time (a new body)
        status, body = await bot.webhook("issue_comment", again, delivery)
        assert status == 200 and "bp-" not in body
    await github.wait_for(lambda: any("exists already" in c["body"] for c in github.comments["acme/widget"][7]),
                          what="the answer with the existing PR")
    await asyncio.sleep(0.5)
    answers = [c for c in github.comments["acme/widget"][7] if "exists already" in c["body"]]
    assert len(answers) == 1 and "/pull/" in answers[0]["body"]
    assert len(slack.parents()) == threads                       # no second thread
