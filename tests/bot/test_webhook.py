"""`POST /github/webhook`: signatures, duplicate deliveries, and the backport triggers (label, comment)."""

from __future__ import annotations

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
                "issue": {"number": 8, "pull_request": {"url": "x"}},
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
