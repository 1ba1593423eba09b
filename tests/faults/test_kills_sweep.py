"""A backport sweep killed mid-way (SIGKILL of its worker, in the per-PR and the rolling mode) is resumed by
another worker: every waiting PR ends with exactly one backport, none is lost, none is made twice, and the
summary is posted once."""

from __future__ import annotations

import asyncio

import pygit2
import pytest

from tests.conftest import config_dict, env_for
from tests.faults.test_kills import github_call, kill_and_recover, slack_post, stage_started
from tests.gitrepo import numbered

REPO = "acme/widget"


def world(remote, github, n: int = 3) -> list[str]:
    files = {f"src/f{i}.c": numbered(20, f"f{i}") for i in range(n)}
    base = remote.commit("main", files, "Initial")
    remote.branch("release/1.0", base)
    shas = []
    for i in range(n):
        sha = remote.commit("main", {f"src/f{i}.c": numbered(20, f"f{i}").replace(f"f{i} 3\n", f"f{i} three\n")},
                            f"Fix {i}")
        github.add_pull(REPO, 100 + i, title=f"Fix {i}", merge_commit_sha=sha, labels=("backport 1.0",),
                        merged_at=f"2026-11-0{i + 1}T00:00:00Z")
        shas.append(sha)
    return shas


async def resumed_stages(redis_url: str, key: str) -> list[str]:
    """The stages the sweep's second attempt found already done (it was killed after them)."""
    import redis.asyncio as aioredis

    from core.audit import Audit

    client = aioredis.from_url(redis_url)
    try:
        entries = await Audit(client, key).entries(0, -1)
    finally:
        await client.aclose()
    assert any(e["kind"] == "retry" for e in entries), "the kill did not land in the sweep"
    return [e["stage"] for e in entries if e["kind"] == "resumed"]


def summaries(slack) -> int:
    return sum("*Backport sweep of" in m["text"] for m in slack.messages.values())


PER_PR = {
    "enqueue started": lambda r, github, slack: stage_started(r, "enqueue:1.0"),
    "children queued, the note's answer lost": lambda r, github, slack: slack_post(slack, "Queued 3 backport(s)"),
    "waiting for the children": lambda r, github, slack: stage_started(r, "wait:1.0"),
    "a child's PR made, its answer lost": lambda r, github, slack: github_call(github, "create_pull"),
    "summary posted, its answer lost": lambda r, github, slack: slack_post(slack, "*Backport sweep of"),
}


def at(moment, redis_url, github, slack):
    check = moment(redis_url, github, slack)

    async def reached(key: str) -> None:
        await slack.wait_for(lambda: check(key), timeout=60, what="the moment")
        github.hangs.clear()
        github.lingers.clear()
        slack.linger_when = None
    return reached


@pytest.mark.parametrize("moment", list(PER_PR))
async def test_a_per_pr_sweep_killed_mid_way_loses_and_doubles_nothing(tmp_path, make_bot, remote, slack, github,
                                                                       redis_url, moment):
    world(remote, github)
    data = config_dict(remote, test_command="sleep 1", test_timeout_s=60)
    key, info, log = await kill_and_recover(tmp_path, make_bot, data, "sweep 1.0",
                                            at(PER_PR[moment], redis_url, github, slack),
                                            env_for(tmp_path, slack, github, None, redis_url))
    await resumed_stages(redis_url, key)
    heads = sorted(p["head"]["ref"] for p in github.pulls[REPO].values() if p["head"]["ref"].startswith("backport/"))
    assert heads == [f"backport/pr{100 + i}-to-release/1.0" for i in range(3)], log.read_text()[-3000:]
    assert summaries(slack) == 1
    text = slack.thread_text(info["thread_ts"])
    assert "*opened* (3)" in text, text
    assert sum("Queued 3 backport(s)" in m["text"] for m in slack.messages.values()) == 1


ROLLING = {
    "rebuild started": lambda r, github, slack: stage_started(r, "rolling:1.0"),
    "rolling PR made, its answer lost": lambda r, github, slack: github_call(github, "create_pull"),
    "labels added, their answer lost": lambda r, github, slack: github_call(github, "add_labels"),
}


@pytest.mark.parametrize("moment", list(ROLLING))
async def test_a_rolling_sweep_killed_mid_way_keeps_each_pick_once(tmp_path, make_bot, remote, slack, github,
                                                                   redis_url, moment):
    shas = world(remote, github)
    data = config_dict(remote, test_command="sleep 1", test_timeout_s=60)
    data["backport"] = {"mode": "rolling"}
    key, info, log = await kill_and_recover(tmp_path, make_bot, data, "sweep 1.0",
                                            at(ROLLING[moment], redis_url, github, slack),
                                            env_for(tmp_path, slack, github, None, redis_url))
    await resumed_stages(redis_url, key)
    rolling = [p for p in github.pulls[REPO].values() if p["head"]["ref"] == "backport/rolling-to-release/1.0"]
    assert len(rolling) == 1, log.read_text()[-3000:]
    c = remote.repo[pygit2.Oid(hex=remote.tip("backport/rolling-to-release/1.0"))]
    picked = []
    while str(c.id) != remote.tip("release/1.0"):
        picked += [line.split()[-1].rstrip(")") for line in c.message.splitlines() if "cherry picked from" in line]
        c = c.parents[0]
    assert sorted(picked) == sorted(shas)
    assert github.labels[REPO][rolling[0]["number"]] == ["backport"]
    assert summaries(slack) == 1
