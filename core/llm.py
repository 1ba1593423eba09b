"""The model gateway: the one way any job asks Claude.

`Gateway` sends a prompt and returns its text, or a JSON answer parsed and validated against a JSON Schema
(`ask_json`), or runs a tool loop bounded in turns and tokens (`tool_loop`). It writes every prompt and reply to
the job's audit log, and turns the SDK's failures into one `ModelError` classified by the SDK's own exception
types (retryable or not). What the model proposes is never an effect here: each job owns a pure
`check(proposal) -> verdict` that decides (jobs/resolve.py, jobs/summarize.py, jobs/adversarial.py,
jobs/provenance/job.py).

Without `ANTHROPIC_API_KEY` there is no client: every model step is skipped and said so in the thread; nothing
here ever invents an answer. Every call counts against the asking person's token budget (`Metered`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

SKIPPED = "no ANTHROPIC_API_KEY is set, so the LLM step was skipped"
Audit = Callable[..., Awaitable[Any]]           # audit(kind, text, **data)


def make_client(env):
    """An AsyncAnthropic client, or None without a key."""
    if not env.anthropic_api_key:
        return None
    import anthropic  # only with a key: the SDK costs the web process ~50 MB it never needs otherwise

    kwargs = {"api_key": env.anthropic_api_key, "max_retries": 3, "timeout": 120.0}
    if env.anthropic_base_url:
        kwargs["base_url"] = env.anthropic_base_url
    return anthropic.AsyncAnthropic(**kwargs)


class Metered:
    """The Claude client with every call counted against the asking person's token budget (core.quotas):
    `messages.create` refuses once the budget is spent and counts what each call used."""

    def __init__(self, client, quotas):
        self._client = client
        self.messages = _Messages(client.messages, quotas)

    def __getattr__(self, name):
        return getattr(self._client, name)


class _Messages:
    def __init__(self, inner, quotas):
        self._inner = inner
        self._quotas = quotas

    async def create(self, **kwargs):
        await self._quotas.check("llm")
        resp = await self._inner.create(**kwargs)
        usage = getattr(resp, "usage", None)
        used = (getattr(usage, "input_tokens", 0) or 0) + (getattr(usage, "output_tokens", 0) or 0)
        await self._quotas.spend("llm", used)
        return resp

    def __getattr__(self, name):            # count_tokens and the rest, as they are
        return getattr(self._inner, name)


def fence(label: str, text: str) -> str:
    """Untrusted text as data in a prompt: inside a tag the text cannot close."""
    safe = text.replace(f"</{label}>", f"<\\/{label}>")
    return f"<{label}>\n{safe}\n</{label}>"


# ------------------------------------------------------------------------------------------------ errors

class ModelError(Exception):
    """The model could not answer. `kind`: connection, timeout, rate-limit, overloaded, server (retryable);
    auth, refused, too-large, bad-request (not). `sdk_name`: the SDK's exception class."""

    RETRYABLE = {"connection", "timeout", "rate-limit", "overloaded", "server"}

    def __init__(self, kind: str, sdk_name: str, message: str):
        super().__init__(f"{sdk_name}: {message}"[:500])
        self.kind = kind
        self.sdk_name = sdk_name

    @property
    def retryable(self) -> bool:
        return self.kind in self.RETRYABLE


def classify(exc: BaseException) -> ModelError | None:
    """The SDK's exception as a ModelError; None for anything that is not the SDK's (a bug of ours)."""
    if isinstance(exc, ModelError):
        return exc
    if not type(exc).__module__.startswith("anthropic"):
        return None                  # not the SDK's (and the SDK need not even be loaded to say so)
    import anthropic

    if not isinstance(exc, anthropic.AnthropicError):
        return None
    kinds = (
        (anthropic.APITimeoutError, "timeout"),              # before APIConnectionError, its base
        (anthropic.APIConnectionError, "connection"),
        (anthropic.RateLimitError, "rate-limit"),
        (anthropic.AuthenticationError, "auth"),
        (anthropic.PermissionDeniedError, "auth"),
        (anthropic.RequestTooLargeError, "too-large"),
        (anthropic.BadRequestError, "bad-request"),
        (anthropic.NotFoundError, "bad-request"),
        (anthropic.UnprocessableEntityError, "bad-request"),
        (anthropic.OverloadedError, "overloaded"),
        (anthropic.InternalServerError, "server"),
    )
    kind = next((k for cls, k in kinds if isinstance(exc, cls)), None)
    if kind is None:
        status = getattr(exc, "status_code", None)
        kind = "server" if isinstance(status, int) and status >= 500 else "refused"
    return ModelError(kind, exc.__class__.__name__, str(exc))


# ------------------------------------------------------------------------------------------------ answers

def parse_json(raw: str) -> Any:
    """The JSON a reply carries, with or without a ```json fence around it; ValueError if none."""
    text = raw.strip()
    m = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.S)
    if m:
        text = m.group(1)
    return json.loads(text)


def schema_problem(data: Any, schema: dict) -> str:
    """'' when `data` fits `schema` (JSON Schema), else one line naming where it does not."""
    import jsonschema  # loaded with the first model answer, not by every process

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path) or "the answer"
    return f"{where}: {error.message[:200]}"


@dataclass
class Answer:
    """A JSON answer: `data` when it parsed and fit the schema, else None and `problem` says why."""

    data: Any
    raw: str
    problem: str = ""
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class LoopEnd:
    ok: bool
    reason: str = ""
    escalate: bool = False      # a person is needed now (gave up, or would not finish): no retry
    usage: str = ""


class Gateway:
    """One job's way to the model: the client, the model and its output limit, and the audit log's writer
    (`audit(kind, text, **data)`, already bound to the job's stage)."""

    def __init__(self, client, model: str, max_tokens: int, audit: Audit):
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.audit = audit

    async def _create(self, **kwargs):
        try:
            return await self.client.messages.create(model=self.model, **kwargs)
        except Exception as exc:
            err = classify(exc)
            if err is None:
                raise
            await self.audit("model-error", str(err), error=err.kind)
            raise err from None

    async def count(self, system: str, user: str) -> int:
        try:
            resp = await self.client.messages.count_tokens(model=self.model, system=system,
                                                            messages=[{"role": "user", "content": user}])
        except Exception as exc:
            err = classify(exc)
            if err is None:
                raise
            raise err from None
        return resp.input_tokens

    async def ask(self, system: str, user: str, *, what: str = "", max_tokens: int | None = None,
                  **audit_data) -> tuple[str, Any]:
        """The reply's text, and the SDK's usage record."""
        await self.audit("prompt", user, call=what, **audit_data)
        resp = await self._create(max_tokens=max_tokens or self.max_tokens, system=system,
                                  messages=[{"role": "user", "content": user}])
        text = "".join(b.text for b in resp.content if getattr(b, "type", "") == "text")
        await self.audit("reply", text, call=what, input_tokens=resp.usage.input_tokens)
        return text, resp.usage

    async def ask_json(self, system: str, user: str, schema: dict, *, what: str = "",
                       max_tokens: int | None = None, **audit_data) -> Answer:
        """A JSON answer checked against `schema`; a reply that is not JSON, or does not fit, is an Answer with
        `problem` set (never an exception: the job says what came back)."""
        raw, usage = await self.ask(system, user, what=what, max_tokens=max_tokens, **audit_data)
        answer = Answer(None, raw, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        try:
            data = parse_json(raw)
        except ValueError as exc:
            answer.problem = f"not JSON ({str(exc)[:100]})"
            return answer
        answer.problem = schema_problem(data, schema)
        if not answer.problem:
            answer.data = data
        return answer

    async def tool_loop(self, system: str, tools: list[dict], user: str, handle: Callable[[str, Any], str], *,
                        stop: Callable[[], LoopEnd | None], budget: int, max_turns: int, remind: str,
                        stage: str = "") -> LoopEnd:
        """Turns of: the model's reply; each tool call answered by `handle(name, input)` (run in a thread: it
        may read git); then `stop()` says whether the loop is over (the model finished or gave up through a
        tool). A reply without a tool call gets `remind` once, then ends the loop as an escalation: the model
        ends only through its tools. Bounded by `max_turns` and `budget` tokens."""
        messages: list[dict] = [{"role": "user", "content": user}]
        used = 0
        reminded = False
        await self.audit("prompt", user, budget=budget)

        def usage(turn: int) -> str:
            return f"{used:,} tokens in {turn + 1} turn(s) (budget {budget:,} tokens, {max_turns} turns)"

        for turn in range(max_turns):
            resp = await self._create(max_tokens=self.max_tokens, system=system, tools=tools, messages=messages)
            used += resp.usage.input_tokens + resp.usage.output_tokens
            content = [block.model_dump(exclude_none=True) for block in resp.content]
            await self.audit("reply", json.dumps(content)[:20000], turn=turn, tokens=used)
            messages.append({"role": "assistant", "content": content})
            calls = [b for b in resp.content if b.type == "tool_use"]
            if not calls:
                words = " ".join(b.text for b in resp.content if getattr(b, "type", "") == "text").strip()
                if not reminded:
                    reminded = True
                    messages.append({"role": "user", "content": remind})
                    continue
                return LoopEnd(False, f"Claude stopped without finishing and said: “{words[:600] or '(nothing)'}”",
                               escalate=True, usage=usage(turn))
            results = []
            for call in calls:
                out = await asyncio.to_thread(handle, call.name, call.input)
                await self.audit("tool", f"{call.name} {json.dumps(call.input)[:500]} -> {out[:300]}")
                results.append({"type": "tool_result", "tool_use_id": call.id, "content": out})
            messages.append({"role": "user", "content": results})
            end = stop()
            if end is not None:
                end.usage = usage(turn)
                return end
            if used > budget:
                return LoopEnd(False, f"Claude used its token budget without finishing: {usage(turn)}",
                               usage=usage(turn))
        return LoopEnd(False, f"Claude did not finish within {max_turns} turns", usage=usage(max_turns - 1))


def for_job(job, stage: str) -> Gateway:
    """The gateway for one stage of a job, audited into the job's log under `stage`. Callers check
    `job.services.llm` first: without a key there is no model step at all."""
    if job.services.llm is None:
        raise RuntimeError(f"{stage}: no model is configured ({SKIPPED})")

    async def audit(kind: str, text: str, **data) -> None:
        await job.audit.write(stage, kind, text, **data)

    return Gateway(job.services.llm, job.config.llm.model, job.config.llm.max_tokens, audit)
