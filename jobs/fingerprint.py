"""Fingerprints of code that survive cosmetic change: the signals behind the provenance guard.

Everything here is a pure function of text. A change's added lines are normalised (the branding map applied,
comments and whitespace dropped) into a token stream; from it come hunk hashes and winnowing fingerprints
(k-gram hashes, the minimum of each window kept), once with identifiers as written and once with identifiers
abstracted, which catches renamed identifiers. Patch-ids hash a diff without whitespace or line numbers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

# A string literal ends at its closing quote or at the end of its line (the closing quote is optional), so every
# quote starts a match that succeeds: each character is looked at once, whatever a hostile file holds.
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\"(?:[^\"\\\n]|\\.)*\"?|'(?:[^'\\\n]|\\.)*'?|\S")
LINE_COMMENT = re.compile(r"//[^\n]*|(?<![\w$])#(?!\s*(?:include|define|if|ifdef|ifndef|endif|else|elif|undef|pragma)\b)[^\n]*")
KEYWORDS = {
    "if", "else", "for", "while", "do", "switch", "case", "default", "break", "continue", "return", "goto",
    "struct", "union", "enum", "typedef", "static", "const", "volatile", "extern", "inline", "sizeof", "void",
    "int", "long", "short", "char", "unsigned", "signed", "float", "double", "size_t", "NULL", "def", "class",
    "import", "from", "proc", "set", "true", "false", "None", "True", "False", "include", "define",
}
K_EXACT, W_EXACT = 12, 6         # tokens per k-gram, k-grams per window (shared runs of 17+ tokens are seen)
K_ABSTRACT, W_ABSTRACT = 16, 8   # longer grams when identifiers are abstracted, to keep false alarms rare

LICENCE_MARKERS = [
    "Redis Source Available License", "RSALv2", "SSPLv1", "Server Side Public License",
    "Redis Community Edition", "2024-Present, Redis Ltd", "AGPLv3",
]


def apply_branding(text: str, mapping: dict[str, str]) -> str:
    """Map upstream names onto ours (Redis→Valkey, master→primary…), longest names first."""
    for old in sorted(mapping, key=len, reverse=True):
        text = re.sub(re.escape(old), mapping[old], text)
    return text


def strip_block_comments(text: str) -> str:
    """/* … */ removed, leaving its newlines so line numbers still line up; an unclosed /* stays as it is.
    Linear: found with str.find, never a regex that rescans from every `/*`."""
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("/*", pos)
        if start < 0:
            break
        end = text.find("*/", start + 2)
        if end < 0:                # no later /* can close either
            break
        out.append(text[pos:start])
        out.append("\n" * text.count("\n", start, end))
        pos = end + 2
    out.append(text[pos:])
    return "".join(out)


def strip_comments(text: str) -> str:
    """Comments removed; a block comment leaves its newlines so line numbers still line up."""
    return LINE_COMMENT.sub("", strip_block_comments(text))


def tokens(text: str, mapping: dict[str, str]) -> list[str]:
    return TOKEN.findall(strip_comments(apply_branding(text, mapping)))


def abstract(toks: list[str]) -> list[str]:
    """Identifiers (not keywords) become one placeholder; literals keep their shape."""
    out = []
    for t in toks:
        if t[0].isalpha() or t[0] == "_":
            out.append(t if t in KEYWORDS else "ID")
        elif t[0] in "\"'":
            out.append("STR")
        elif t[0].isdigit():
            out.append("NUM")
        else:
            out.append(t)
    return out


def _h(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def winnow(toks: list[str], k: int, w: int) -> dict[int, int]:
    """Winnowing fingerprints: hash -> index of the first token of its k-gram."""
    if len(toks) < k:
        return {}
    grams = [_h("\x1f".join(toks[i:i + k])) for i in range(len(toks) - k + 1)]
    if len(grams) <= w:
        m = min(range(len(grams)), key=lambda i: grams[i])
        return {grams[m]: m}
    out: dict[int, int] = {}
    for start in range(len(grams) - w + 1):
        window = grams[start:start + w]
        m = start + min(range(w), key=lambda i: (window[i], -i))
        out.setdefault(grams[m], m)
    return out


@dataclass
class Added:
    """The added lines of one file in one change, with their line numbers in the new file."""

    path: str
    lines: list[tuple[int, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(t for _, t in self.lines)


def parse_patch(path: str, patch: str) -> tuple[Added, list[list[str]]]:
    """Added lines (with new-file line numbers) and hunks (their +/- lines) of one file's patch."""
    added = Added(path)
    hunks: list[list[str]] = []
    new_line = 0
    for line in patch.splitlines():
        if line.startswith("@@"):
            m = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)", line)
            new_line = int(m.group(1)) if m else 0
            hunks.append([])
        elif line.startswith("+") and not line.startswith("+++"):
            added.lines.append((new_line, line[1:]))
            if hunks:
                hunks[-1].append(line)
            new_line += 1
        elif line.startswith("-") and not line.startswith("---"):
            if hunks:
                hunks[-1].append(line)
        elif not line.startswith("\\"):
            new_line += 1
    return added, hunks


def patch_id(files: dict[str, list[list[str]]]) -> str:
    """A stable id of a diff: its +/- lines without whitespace, file order fixed, no line numbers or paths."""
    h = hashlib.sha1()
    for path in sorted(files):
        for hunk in files[path]:
            for line in hunk:
                h.update(re.sub(r"\s+", "", line).encode())
                h.update(b"\n")
    return h.hexdigest()


COMMENT_LINE = re.compile(r"^\s*(\*|/\*|//|#\s*(?!include|define|if|ifdef|ifndef|else|elif|endif|undef|pragma))")


def code_lines(hunk: list[str]) -> str:
    """A hunk's added lines that can be code: a line of a block comment cut off from its opening (` * Copyright
    …`), or a comment line, is not (a hunk does not always carry the `/*` that began it)."""
    return "\n".join(line[1:] for line in hunk if line.startswith("+") and not COMMENT_LINE.match(line[1:]))


def code_patch_id(files: dict[str, list[list[str]]], mapping: dict[str, str], min_tokens: int = 12) -> str:
    """`patch_id`, or '' when the change adds less than `min_tokens` of code (comments, licence headers and
    blank lines are no evidence of where code came from)."""
    code = sum(len(tokens(code_lines(h), mapping)) for hunks in files.values() for h in hunks)
    return patch_id(files) if code >= min_tokens else ""


def hunk_hashes(hunks: list[list[str]], mapping: dict[str, str], min_tokens: int = 12) -> set[str]:
    """Hashes of each hunk's added code, normalised; tiny hunks, and comments, are not evidence."""
    out = set()
    for hunk in hunks:
        code = code_lines(hunk)
        toks = tokens(code, mapping)
        if len(toks) >= min_tokens:
            out.add(hashlib.sha1(" ".join(toks).encode()).hexdigest()[:20])
    return out


@dataclass
class Prints:
    exact: dict[int, int]          # fingerprint -> token index
    abstract: dict[int, int]
    token_lines: list[int]         # token index -> line number in the new file


def prints(added: Added, mapping: dict[str, str]) -> Prints:
    toks: list[str] = []
    lines: list[int] = []
    # Comments are stripped over the whole text first so block comments spanning lines vanish.
    text = strip_comments(apply_branding(added.text, mapping))
    numbers = [n for n, _ in added.lines]
    for i, line in enumerate(text.split("\n")):
        found = TOKEN.findall(line)
        toks.extend(found)
        lines.extend([numbers[i] if i < len(numbers) else (numbers[-1] if numbers else 0)] * len(found))
    return Prints(winnow(toks, K_EXACT, W_EXACT), winnow(abstract(toks), K_ABSTRACT, W_ABSTRACT), lines)


def licence_markers(text: str) -> list[str]:
    return [m for m in LICENCE_MARKERS if m.lower() in text.lower()]
