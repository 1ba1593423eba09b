"""Names that reach git, whoever wrote them (a slash command, a GitHub label or comment, bot.toml): one
validator for branch, release and ref names, and one for numbers. Checked by walking the text once: no
backtracking on attacker input, and every refusal is a short reason fit to show."""

from __future__ import annotations

ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-+")
MAX_BRANCH = 200


def branch_problem(name: object) -> str:
    """'' when `name` is a safe branch (or release) name, else why not: git's check-ref-format rules, plus
    ASCII letters, digits and `._/-+` only, and no leading `-` (it would read as an option)."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if len(name) > MAX_BRANCH:
        return f"is longer than {MAX_BRANCH} characters"
    bad = next((ch for ch in name if ch not in ALLOWED), None)
    if bad is not None:
        return f"contains {bad!r}; use letters, digits and . _ / - + only"
    if name.startswith("-"):
        return "starts with '-'"
    if ".." in name or "@{" in name:
        return "contains '..'"
    for part in name.split("/"):
        if not part:
            return "has an empty path component (a leading, trailing or double '/')"
        if part.startswith("."):
            return "has a component starting with '.'"
        if part.endswith(".lock") or part.endswith("."):
            return "has a component ending with '.lock' or '.'"
    return ""


def is_branch(name: object) -> bool:
    return branch_problem(name) == ""


def ascii_int(text: object, low: int, high: int) -> int | None:
    """`text` as an int in [low, high] when it is ASCII digits only (no '²', no '٣', no sign), else None."""
    if not isinstance(text, str) or not text or len(text) > 18 or not (text.isascii() and text.isdecimal()):
        return None
    value = int(text)
    return value if low <= value <= high else None
