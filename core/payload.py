"""Reading GitHub webhook payloads, which are untrusted: a field that should be an object, a text or a number
and is anything else reads as empty, never as an error."""

from __future__ import annotations

import re

LOGIN = re.compile(r"[A-Za-z0-9-]{1,39}")


def obj(value) -> dict:
    return value if isinstance(value, dict) else {}


def text(value) -> str:
    return value if isinstance(value, str) else ""


def number(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**9 else None


def login(value) -> str:
    """A GitHub login, or '' for anything that is not one."""
    return value if isinstance(value, str) and LOGIN.fullmatch(value) else ""
