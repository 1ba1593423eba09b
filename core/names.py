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


SHA_CHARS = frozenset("0123456789abcdefABCDEF")


def revision_problem(text: object) -> str:
    """'' when `text` is a revision in the safe part of git's syntax: a branch, tag or release name, or a 7-40
    hex SHA, followed by any of `^`, `^N`, `~`, `~N` (e.g. `abc1234^`, `v8.0.1~3`), else why not."""
    if not isinstance(text, str) or not text:
        return "is empty"
    if len(text) > 250:
        return "is too long"
    cut = next((i for i, ch in enumerate(text) if ch in "^~"), len(text))
    name, suffix = text[:cut], text[cut:]
    if not name:
        return "has no name before ^ or ~"
    is_sha = 7 <= len(name) <= 40 and all(ch in SHA_CHARS for ch in name)
    if not is_sha and branch_problem(name):
        return branch_problem(name)
    i = 0
    while i < len(suffix):
        if suffix[i] not in "^~":
            return f"has {suffix[i]!r} after a ^ or ~ (only ^, ^N, ~ and ~N may follow a name)"
        j = i + 1
        while j < len(suffix) and suffix[j].isascii() and suffix[j].isdecimal():
            j += 1
        if j - i - 1 > 6:
            return "has a number after ^ or ~ that is too large"
        i = j
    return ""
