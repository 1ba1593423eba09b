"""Slack and GitHub that accept a request and never answer: every call is bounded by a timeout and becomes a
clear error, not a stuck job."""

from __future__ import annotations

import time

import pytest

from core import config as config_mod
from core import slack as slack_mod
from core.chat import ChatError
from core.github import GitHubClient, GitHubError
from tests.conftest import CHANNEL, env_for
from tests.fakes.github import TOKEN


async def test_a_hanging_slack_is_a_bounded_error(slack, tmp_path):
    env = config_mod.load_env(env_for(tmp_path, slack, None, None))
    chat = slack_mod.SlackChat(slack_mod.web_client(env, timeout=1))
    slack.hangs["chat.postMessage"] = 30
    started = time.monotonic()
    with pytest.raises(ChatError, match="chat.postMessage"):
        await chat.post(CHANNEL, "hello")
    assert time.monotonic() - started < 12            # the timeout, and a bounded number of retries
    await chat.close()


async def test_a_hanging_github_is_a_bounded_error(github):
    github.add_pull("acme/widget", 3, title="Three", merge_commit_sha="a" * 40)
    github.hangs["get_pull"] = 30
    gh = GitHubClient(github.url, token=TOKEN, timeout=1)
    started = time.monotonic()
    with pytest.raises(GitHubError, match="GET /repos/acme/widget/pulls/3"):
        await gh.pull("acme/widget", 3)
    assert time.monotonic() - started < 12
