"""The model gateway with the real Anthropic SDK pointed at the fake API: JSON answers checked against a
schema, the tool loop's bounds and endings, every prompt and reply audited, and the SDK's failures classified
by its own exception types."""

from __future__ import annotations

import anthropic as sdk
import httpx
import pytest

from core.llm import Gateway, LoopEnd, ModelError, classify, parse_json, schema_problem
from tests.fakes.anthropic import KEY, text, tool

SCHEMA = {"type": "object", "required": ["verdict"], "properties": {"verdict": {"enum": ["yes", "no"]}}}


@pytest.fixture
async def gateway(anthropic):
    client = sdk.AsyncAnthropic(api_key=KEY, base_url=anthropic.url, max_retries=0)
    audit: list[tuple] = []

    async def write(kind, body, **data):
        audit.append((kind, body, data))

    g = Gateway(client, "claude-test", 256, write)
    g.log = audit
    yield g
    await client.close()


@pytest.mark.parametrize("raw, data, problem", [
    ('{"verdict": "yes"}', {"verdict": "yes"}, ""),
    ('```json\n{"verdict": "no"}\n```', {"verdict": "no"}, ""),
    ('{"verdict": "maybe"}', None, "verdict: 'maybe' is not one of"),
    ('{"because": "reasons"}', None, "'verdict' is a required property"),
    ("Sure! The verdict is yes.", None, "not JSON"),
    ('["yes"]', None, "is not of type 'object'"),
])
async def test_json_answers_are_checked_against_the_schema(gateway, anthropic, raw, data, problem):
    anthropic.reply(text(raw))
    answer = await gateway.ask_json("system", "<data>x</data>", SCHEMA, what="verdict")
    assert answer.data == data
    assert problem in answer.problem if problem else answer.ok
    assert [k for k, _, _ in gateway.log] == ["prompt", "reply"] and gateway.log[1][1] == raw


async def test_the_tool_loop_ends_only_through_a_tool_or_a_bound(gateway, anthropic):
    seen = []

    def handle(name, args):
        seen.append((name, args))
        return "ok"

    tools = [{"name": "finish", "description": "done", "input_schema": {"type": "object", "properties": {}}}]
    finished = []
    anthropic.reply(text("Let me think."), tool("finish"))
    end = await gateway.tool_loop("s", tools, "go", handle, stop=lambda: LoopEnd(True) if finished or seen else None,
                                  budget=100_000, max_turns=5, remind="Use the tools.")
    assert end.ok and seen == [("finish", {})]
    assert "Use the tools." in str(anthropic.requests[1]["messages"])         # reminded once

    anthropic.reply(text("I give up in words."), text("Still words."))
    end = await gateway.tool_loop("s", tools, "go", lambda n, a: "ok", stop=lambda: None, budget=100_000,
                                  max_turns=5, remind="Use the tools.")
    assert not end.ok and end.escalate and "stopped without finishing and said" in end.reason

    anthropic.default = lambda body: [tool("finish")]
    end = await gateway.tool_loop("s", tools, "go", lambda n, a: "ok", stop=lambda: None, budget=100_000,
                                  max_turns=3, remind="r")
    assert not end.ok and "did not finish within 3 turns" in end.reason
    end = await gateway.tool_loop("s", tools, "go" * 2000, lambda n, a: "ok", stop=lambda: None, budget=10,
                                  max_turns=3, remind="r")
    assert not end.ok and "token budget" in end.reason


async def test_an_api_failure_is_a_classified_model_error_and_audited(gateway, anthropic):
    anthropic.fail("messages", 529, body='{"type": "error", "error": {"type": "overloaded_error", "message": "x"}}')
    with pytest.raises(ModelError) as err:
        await gateway.ask("s", "u")
    assert err.value.kind == "overloaded" and err.value.retryable
    assert gateway.log[-1][0] == "model-error"
    anthropic.fail("messages", 400, body='{"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}')
    with pytest.raises(ModelError) as err:
        await gateway.ask("s", "u")
    assert err.value.kind == "bad-request" and not err.value.retryable


def status_error(cls, status: int):
    response = httpx.Response(status, request=httpx.Request("POST", "http://api/v1/messages"))
    return cls("message", response=response, body=None)


@pytest.mark.parametrize("exc, kind", [
    (status_error(sdk.RateLimitError, 429), "rate-limit"),
    (status_error(sdk.AuthenticationError, 401), "auth"),
    (status_error(sdk.PermissionDeniedError, 403), "auth"),
    (status_error(sdk.BadRequestError, 400), "bad-request"),
    (status_error(sdk.InternalServerError, 500), "server"),
    (status_error(sdk.APIStatusError, 503), "server"),
    (status_error(sdk.APIStatusError, 418), "refused"),
    (sdk.APIConnectionError(request=httpx.Request("POST", "http://api")), "connection"),
    (sdk.APITimeoutError(request=httpx.Request("POST", "http://api")), "timeout"),
])
def test_errors_are_classified_by_the_sdks_types(exc, kind):
    assert classify(exc).kind == kind


def test_our_own_bugs_are_not_model_errors():
    assert classify(KeyError("x")) is None and classify(ValueError("anthropic says")) is None


def test_schema_and_fences():
    assert schema_problem({"verdict": "yes"}, SCHEMA) == ""
    assert parse_json("```\n[1, 2]\n```") == [1, 2]
    with pytest.raises(ValueError):
        parse_json("no json here")
