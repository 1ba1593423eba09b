"""The one Claude client. Without `ANTHROPIC_API_KEY` there is no client and every LLM step is skipped and
said so in the thread; nothing here ever invents an answer."""

from __future__ import annotations

SKIPPED = "no ANTHROPIC_API_KEY is set, so the LLM step was skipped"


def make_client(env):
    """An AsyncAnthropic client, or None without a key (the SDK is then not even imported)."""
    if not env.anthropic_api_key:
        return None
    from anthropic import AsyncAnthropic

    kwargs = {"api_key": env.anthropic_api_key, "max_retries": 3, "timeout": 120.0}
    if env.anthropic_base_url:
        kwargs["base_url"] = env.anthropic_base_url
    return AsyncAnthropic(**kwargs)


class Metered:
    """The Claude client with every call counted against the asking person's token budget (bot.quotas):
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
