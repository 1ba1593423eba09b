"""Fake Anthropic Messages API: `POST /v1/messages` answers from a script of replies, in order, and records
every request (so tests can check what the model was shown). `POST /v1/messages/count_tokens` counts roughly
four characters a token."""

from __future__ import annotations

import itertools
import json

from aiohttp import web

from tests.fakes.server import FakeServer

KEY = "sk-ant-test-key-0000"


def text(t: str) -> list[dict]:
    return [{"type": "text", "text": t}]


def tool(name: str, **args) -> dict:
    return {"type": "tool_use", "id": "", "name": name, "input": args}


class FakeAnthropic(FakeServer):
    def __init__(self):
        super().__init__()
        self.script: list[list[dict]] = []
        self.default = None   # a function of the request body answering when the script is empty
        self.requests: list[dict] = []
        self._ids = itertools.count(1)
        self.app.router.add_post("/v1/messages", self.messages)
        self.app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    def reply(self, *contents) -> None:
        """Queue replies; each is a content list, one block, or a function of the request body giving either."""
        for c in contents:
            self.script.append(c if isinstance(c, list) or callable(c) else [c])

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("messages", body))
        failure = self.take_failure("messages")
        if failure is not None:
            return failure
        # Older SDKs send the key as x-api-key, newer ones as a bearer token; the API takes both.
        if KEY not in (request.headers.get("x-api-key"), request.headers.get("Authorization", "")[7:]):
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                 "message": "invalid x-api-key"}}, status=401)
        problem = tool_protocol_problem(body.get("messages", []))
        if problem:     # what the real API answers to a conversation that breaks the tool-use rules
            return web.json_response({"type": "error", "error": {"type": "invalid_request_error",
                                                                 "message": problem}}, status=400)
        self.requests.append(body)
        if not self.script:
            content = self.default(body) if self.default else text("I have nothing more to say.")
            content = content if isinstance(content, list) else [content]
        else:
            content = self.script.pop(0)
            if callable(content):
                content = content(body)
                content = content if isinstance(content, list) else [content]
        offered = {t.get("name") for t in body.get("tools", [])}
        blocks = []
        for block in content:
            block = dict(block)
            if block["type"] == "tool_use" and block["name"] not in offered:
                # A real model only calls tools it was given: a script that does otherwise is a broken test.
                block = {"type": "text", "text": f"(the script called {block['name']}, which was not offered)"}
            if block["type"] == "tool_use":
                block["id"] = f"toolu_{next(self._ids):04d}"
            blocks.append(block)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        prompt_chars = len(json.dumps(body.get("messages", []))) + len(str(body.get("system", "")))
        return web.json_response({
            "id": f"msg_{next(self._ids):04d}", "type": "message", "role": "assistant", "model": body["model"],
            "content": blocks, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": prompt_chars // 4, "output_tokens": len(json.dumps(blocks)) // 4},
        })

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        chars = len(json.dumps(body.get("messages", []))) + len(str(body.get("system", "")))
        return web.json_response({"input_tokens": chars // 4})


def tool_protocol_problem(messages: list) -> str:
    """The Messages API's tool-use rules: every tool_use in an assistant turn is answered by a tool_result with
    its id in the very next user turn, and tool_result blocks come first in that turn."""
    for i, m in enumerate(messages):
        if m.get("role") != "assistant" or not isinstance(m.get("content"), list):
            continue
        ids = [b.get("id") for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
        if not ids:
            continue
        nxt = messages[i + 1] if i + 1 < len(messages) else None
        if nxt is None:
            continue
        content = nxt.get("content") if isinstance(nxt.get("content"), list) else []
        results = [b.get("tool_use_id") for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        missing = [x for x in ids if x not in results]
        if nxt.get("role") != "user" or missing:
            return (f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    + ", ".join(missing or ids))
        kinds = [b.get("type") for b in content if isinstance(b, dict)]
        if "tool_result" in kinds and kinds.index("text") < kinds.index("tool_result") if "text" in kinds else False:
            return f"messages.{i + 1}: tool_result blocks must come first in the user message"
    return ""
