"""Property-based fuzzing of every command's text and of webhook payloads: no crash, one-line answers, and
nothing queued for anything invalid."""

from __future__ import annotations

import asyncio
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import commands
from core import config as config_mod
from bot import webhook
from bot.console import ConsoleChat
from core.services import Services
from commands.base import Invocation
from tests.conftest import MAINTAINER

CONFIG = {"repos": [{"github": "acme/widget", "clone_url": "/nonexistent", "releases": {"1.0": "release/1.0"}}],
          "slack": {"maintainers": [MAINTAINER], "notify_channel": "CNOTIFY01"}}
NAMES = sorted(commands.COMMANDS) + ["help", "nope"]
WORDS = st.sampled_from(["PR#12", "#12", "12", "1.0", "9.1,8.1", "abcdef1", "deadbeefdeadbeef", "--upload-pack=x",
                         "../../etc/passwd", "$(id)", "`id`", ";rm -rf /", "<@U123|x>", "@name", "add", "list",
                         "remove", "link", "help", "--another", "a..b", "../x..y", "https://github.com/acme/widget/pull/3",
                         "\u202e", "\x00", "'", '"', "x" * 300])
TEXT = st.one_of(st.text(max_size=200), st.lists(WORDS, max_size=6).map(" ".join))


def run(coro):
    return asyncio.run(coro)


async def dispatch_once(redis_url: str, name: str, text: str, user: str):
    cfg = config_mod.parse(CONFIG)
    services = Services.build(cfg, redis_url, {"slack": ConsoleChat(io.StringIO())})
    try:
        before = await services.redis.zcard("saq:bot:incomplete")
        outcome = await commands.dispatch(Invocation(command=name, text=text, user=user, channel="CWORK0001",
                                                     dest="slack", services=services))
        after = await services.redis.zcard("saq:bot:incomplete")
        await services.redis.flushdb()
        return outcome, after - before
    finally:
        await services.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NAMES), text=TEXT, maintainer=st.booleans())
def test_any_command_text(redis_url, name, text, maintainer):
    outcome, queued = run(dispatch_once(redis_url, name, text, MAINTAINER if maintainer else "UOTHER001"))
    assert isinstance(outcome.text, str) and outcome.text
    if not outcome.ok:
        assert "\n" not in outcome.text and queued == 0
        assert len(outcome.text) < 600
    if queued:
        assert outcome.ok and "Queued job" in outcome.text


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                  max_size=5), max_leaves=20)
PAYLOAD = st.fixed_dictionaries({}, optional={
    "action": st.sampled_from(["opened", "closed", "labeled", "created", "synchronize", "x"]) | JSONISH,
    "repository": st.just({"full_name": "acme/widget"}) | JSONISH,
    "pull_request": JSONISH | st.fixed_dictionaries({"number": st.integers() | JSONISH, "merged": JSONISH,
                                                     "labels": JSONISH, "head": JSONISH, "user": JSONISH}),
    "label": JSONISH, "issue": JSONISH, "comment": JSONISH, "sender": JSONISH})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.sampled_from(["pull_request", "issue_comment", "push", "ping"]), payload=PAYLOAD)
def test_any_webhook_payload(redis_url, event, payload):
    async def once():
        cfg = config_mod.parse(CONFIG)
        services = Services.build(cfg, redis_url, {"slack": ConsoleChat(io.StringIO())})
        try:
            requests = await webhook.route(services, event, json.loads(json.dumps(payload)))
            assert isinstance(requests, list)
        finally:
            await services.close()
    run(once())


HEADER = st.one_of(st.text(max_size=40), st.from_regex(r"-?[0-9]{0,20}", fullmatch=True),
                   st.sampled_from(["", "0", "v0=", "v0=" + "0" * 64, "1e9", " 1", "１２３", "²", "٣"]))


async def serve_and_post(redis_url: str, path: str, cases: list[tuple[dict, str]]) -> tuple[list[int], int]:
    """The real web app (Bolt and the webhook) on a test server, signing secrets set: post each (headers, body);
    returns the statuses and how many jobs were queued."""
    from aiohttp.test_utils import TestClient, TestServer
    from slack_sdk.web.async_client import AsyncWebClient

    from bot import app as app_mod
    from tests.conftest import SIGNING_SECRET, SLACK_TOKEN, WEBHOOK_SECRET
    from tests.fakes.slack import FakeSlack

    slack = await FakeSlack().start()
    env = config_mod.load_env({"SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                               "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET, "REDIS_URL": redis_url})
    cfg = config_mod.parse(CONFIG, env=env)
    services = Services.build(cfg, redis_url, {"slack": ConsoleChat(io.StringIO())})
    bolt = app_mod.build_bolt(services, AsyncWebClient(token=SLACK_TOKEN, base_url=slack.api_url))
    statuses = []
    try:
        async with TestClient(TestServer(app_mod.build_web(services, bolt))) as http:
            for headers, body in cases:
                try:
                    resp = await http.post(path, data=body.encode("utf-8", "surrogatepass"), headers=headers)
                except ValueError:          # a header aiohttp itself will not send (a newline in it)
                    continue
                statuses.append(resp.status)
        return statuses, await services.redis.zcard("saq:bot:incomplete")
    finally:
        await services.close()
        await slack.stop()


def headers(**values) -> dict:
    return {k.replace("_", "-"): v for k, v in values.items() if v is not None}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(st.tuples(st.one_of(st.none(), HEADER), st.one_of(st.none(), HEADER),
                                st.one_of(st.text(max_size=80), st.text(max_size=20).map(lambda t: "payload=" + t))),
                      min_size=1, max_size=8))
def test_any_slack_signature_headers_are_refused_never_an_error(redis_url, cases):
    """Whatever arrives in the signature headers and the body, an unsigned request is refused (401, or 400
    for a body that cannot be parsed), never a 500, and queues nothing."""
    posts = [(headers(Content_Type="application/x-www-form-urlencoded", X_Slack_Request_Timestamp=ts,
                      X_Slack_Signature=sig), body) for ts, sig, body in cases]
    statuses, queued = run(serve_and_post(redis_url, "/slack/events", posts))
    assert set(statuses) <= {400, 401} and queued == 0, statuses


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(st.tuples(st.one_of(st.none(), HEADER, HEADER.map(lambda h: "sha256=" + h)),
                                st.one_of(st.none(), HEADER), st.one_of(st.none(), HEADER),
                                st.text(max_size=80)), min_size=1, max_size=8))
def test_any_webhook_headers_are_refused_never_an_error(redis_url, cases):
    """Unsigned or badly signed deliveries, whatever their headers: a 401, never a 500, nothing queued."""
    posts = [(headers(Content_Type="application/json", X_Hub_Signature_256=sig, X_GitHub_Event=event,
                      X_GitHub_Delivery=delivery), body) for sig, event, delivery, body in cases]
    statuses, queued = run(serve_and_post(redis_url, "/github/webhook", posts))
    assert set(statuses) <= {401} and queued == 0, statuses


# A slash command's fields, any of them missing or odd. (Interactive payloads are parsed by Bolt, which trusts
# what Slack signed: it answers 500 to, say, a signed button click without an action_id.)
FORM = st.dictionaries(st.sampled_from(["command", "text", "user_id", "channel_id", "team_id", "response_url",
                                        "trigger_id", "api_app_id", "ssl_check", "token", "user_name"]),
                       st.one_of(st.text(max_size=40), st.sampled_from(["/backport", "/summarize", "/firstissue",
                                                                        "/help", "/nope", "/", "U1", "C1", "{}",
                                                                        "1.0 abcdef1", "help", "add #1"])),
                       max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forms=st.lists(FORM, min_size=1, max_size=6))
def test_any_signed_slash_command_body_is_answered_never_an_error(redis_url, forms):
    """A signed slash command missing fields, or with odd ones, gets a 4xx or a plain answer, never a 500."""
    import urllib.parse

    from tests.conftest import sign_slack

    posts = []
    for form in forms:
        body = urllib.parse.urlencode(form)
        posts.append((sign_slack(body), body))
    statuses, _ = run(serve_and_post(redis_url, "/slack/events", posts))
    assert all(s < 500 for s in statuses), statuses


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(st.tuples(st.one_of(HEADER, st.sampled_from(["pull_request", "issue_comment", "push"])),
                                st.one_of(HEADER, st.uuids().map(str)),
                                st.one_of(PAYLOAD.map(json.dumps), st.text(max_size=60))), min_size=1, max_size=6))
def test_any_signed_delivery_is_answered_never_an_error(redis_url, cases):
    """Correctly signed deliveries with any event name, delivery id or body: answered (2xx, or 400 for what is
    not a JSON object or lacks its headers), never a 500."""
    from tests.conftest import sign_github

    posts = [(headers(Content_Type="application/json", X_GitHub_Event=event, X_GitHub_Delivery=delivery,
                      X_Hub_Signature_256=sign_github(body.encode("utf-8", "surrogatepass"))), body)
             for event, delivery, body in cases]
    statuses, _ = run(serve_and_post(redis_url, "/github/webhook", posts))
    assert all(s < 500 for s in statuses), statuses
