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


def fence(label: str, text: str) -> str:
    """Untrusted text as data in a prompt: inside a tag the text cannot close."""
    safe = text.replace(f"</{label}>", f"<\\/{label}>")
    return f"<{label}>\n{safe}\n</{label}>"
