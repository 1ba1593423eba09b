"""The deterministic digest of a change: what the diff itself says, before any model reads it.

Files by area, the functions and symbols touched (from hunk headers and changed lines), tests added or changed,
added/removed lines, generated, vendored and binary files set apart, config/build/CI files flagged. The same
`FileChange` list comes from GitHub's PR files API or from a local `base..head` range."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

import pygit2

from core.render import lit, lits
from jobs import git

HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@ ?(?P<context>.*)$")
DEFINITION = re.compile(
    r"^[+-]\s*(?:(?:export\s+|pub(?:\(\w+\))?\s+|static\s+|inline\s+|async\s+|public\s+|private\s+|protected\s+)*"
    r"(?:def|class|function|func|fn|struct|enum|interface|trait|impl|type|module|#define)\s+"
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|[A-Za-z_][A-Za-z0-9_\s\*]*?\b(?P<cname>[A-Za-z_][A-Za-z0-9_]*)\s*\([^;]*\)\s*\{?\s*$)")
C_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "else", "do", "case"}
TEST = re.compile(r"(^|/)(tests?|spec|specs|__tests__|testing)(/|$)|(^|/)(test_[^/]+|[^/]+_test\.[a-z]+|"
                  r"[^/]+\.(test|spec)\.[a-z]+|[^/]+Test\.java|[^/]+\.tcl)$", re.I)
GENERATED = re.compile(r"(\.lock$|package-lock\.json$|yarn\.lock$|pnpm-lock\.yaml$|Cargo\.lock$|poetry\.lock$|"
                       r"_pb2(_grpc)?\.py$|\.pb\.(go|cc|h)$|\.min\.(js|css)$|(^|/)generated?/|\.generated\.|"
                       r"(^|/)dist/|\.snap$)", re.I)
VENDORED = re.compile(r"(^|/)(vendor|vendored|third_party|third-party|deps|node_modules|external)/", re.I)
CONFIG = re.compile(r"(^|/)(\.github/|\.gitlab-ci\.yml$|\.circleci/|Makefile$|[^/]*\.mk$|CMakeLists\.txt$|"
                    r"[^/]*\.cmake$|Dockerfile|docker-compose|configure(\.ac)?$|[^/]*\.(toml|ya?ml|ini|cfg|conf)$|"
                    r"setup\.py$|package\.json$|go\.mod$|requirements[^/]*\.txt$|\.bazel|BUILD$|WORKSPACE$)", re.I)
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\u00ad]")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)


@dataclass
class FileChange:
    path: str
    status: str = "modified"          # added, removed, modified, renamed
    additions: int = 0
    deletions: int = 0
    patch: str | None = None          # None: GitHub gave no patch (too large) or binary
    old_path: str | None = None
    binary: bool = False

    @property
    def fingerprint(self) -> str:
        """Identifies this file's change, to tell what moved between two summaries."""
        text = f"{self.status}:{self.old_path}:{self.patch if self.patch is not None else (self.additions, self.deletions)}"
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def clean(text: str) -> str:
    """Untrusted text with HTML comments and invisible characters removed (hidden instructions live there)."""
    return INVISIBLE.sub("", HTML_COMMENT.sub("", text or ""))


def from_github(files: list[dict]) -> list[FileChange]:
    out = []
    for f in files:
        patch = f.get("patch")
        out.append(FileChange(path=f["filename"], status=f.get("status", "modified"),
                              additions=int(f.get("additions", 0)), deletions=int(f.get("deletions", 0)),
                              patch=patch, old_path=f.get("previous_filename"),
                              binary=patch is None and int(f.get("changes", 0)) == 0 and f.get("status") != "removed"))
    return out


def from_range(repo: pygit2.Repository, base: pygit2.Commit, head: pygit2.Commit) -> list[FileChange]:
    merge_base = repo.merge_base(base.id, head.id) or base.id
    diff = repo.diff(git.commit_at(repo, merge_base), head, context_lines=3)
    diff.find_similar()
    out = []
    statuses = {"A": "added", "D": "deleted", "M": "modified", "R": "renamed"}
    for patch in diff:
        if patch is None:
            continue
        delta = patch.delta
        _, adds, dels = patch.line_stats
        binary = bool(delta.is_binary)
        text = None
        if not binary:
            full = patch.text or ""
            text = full[full.find("@@"):] if "@@" in full else ""
        out.append(FileChange(path=delta.new_file.path, status=statuses.get(delta.status_char(), "modified"),
                              additions=adds, deletions=dels, patch=text,
                              old_path=delta.old_file.path if delta.old_file.path != delta.new_file.path else None,
                              binary=binary))
    return out


FLAT_DIRS = ("src", "lib", "pkg", "internal", "tests", "test")
CODEOWNERS_PATHS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")


def parse_codeowners(text: str, limit: int = 2000) -> list[tuple[str, str]]:
    """(pattern, owners) of a CODEOWNERS file, in file order (the last match wins, as on GitHub)."""
    out = []
    for line in text.splitlines()[:limit]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        out.append((parts[0][:200], " ".join(parts[1:4])))
    return out


def _owners_match(pattern: str, path: str) -> bool:
    """gitignore-style matching as CODEOWNERS uses it: `/dir/` and `dir/` prefixes, `*.ext` anywhere, globs."""
    anchored = pattern.startswith("/")
    pat = pattern.lstrip("/").replace("**/", "*").replace("/**", "/*")
    if pat.endswith("/"):
        return path.startswith(pat) if anchored or "/" in pat[:-1] else f"/{pat}" in f"/{path}"
    if "/" not in pat and not anchored:
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pat) or fnmatch.fnmatchcase(path, pat + "/*")
    return fnmatch.fnmatchcase(path, pat) or fnmatch.fnmatchcase(path, pat.rstrip("/") + "/*")


def area_of(path: str, areas: dict[str, str] | None = None, owners: list[tuple[str, str]] | None = None) -> str:
    """The area a file belongs to: the longest matching prefix of `[summarize] areas` when configured; else the
    last CODEOWNERS pattern that matches (named with its owners); else the directory, with a flat source
    directory (Valkey's src/) split by file stem: src/cluster.c, src/cluster_legacy.c and src/cluster.h are
    `src/cluster*`."""
    if areas:
        best = max((p for p in areas if path.startswith(p)), key=len, default=None)
        if best is not None:
            return areas[best]
    for pattern, who in reversed(owners or []):
        if _owners_match(pattern, path):
            return f"{pattern} ({who})" if who else pattern
    parts = path.split("/")
    if len(parts) == 1:
        return "(root)"
    if parts[0] in FLAT_DIRS and len(parts) > 2:
        return "/".join(parts[:2]) + "/"
    if parts[0] in FLAT_DIRS and len(parts) == 2:
        stem = re.split(r"[_.-]", parts[1], maxsplit=1)[0] or parts[1]
        return f"{parts[0]}/{stem}*"
    return parts[0] + "/"


def kind_of(f: FileChange) -> str:
    if f.binary:
        return "binary"
    if VENDORED.search(f.path):
        return "vendored"
    if GENERATED.search(f.path):
        return "generated"
    if TEST.search(f.path):
        return "test"
    if CONFIG.search(f.path):
        return "config"
    return "source"


def symbols_of(f: FileChange, limit: int = 8) -> list[str]:
    found: OrderedDict[str, None] = OrderedDict()
    leading = False   # inside a hunk's context lines, before its first change
    for line in (f.patch or "").splitlines():
        m = HUNK.match(line)
        if m:
            leading = True
            if m["context"].strip():
                name = _name(m["context"])
                if name:
                    found.setdefault(name)
            continue
        if leading and line.startswith(" "):
            d = DEFINITION.match("+" + line[1:])
            if d and (d["name"] or d["cname"]) not in C_KEYWORDS and line[1:].split(None, 1)[0] not in C_KEYWORDS:
                found.setdefault(d["name"] or d["cname"])
            continue
        leading = False
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
            words = line[1:].split(None, 1)
            d = DEFINITION.match(line) if words and words[0] not in C_KEYWORDS else None
            if d:
                name = d["name"] or d["cname"]
                if name and name not in C_KEYWORDS:
                    found.setdefault(name)
        if len(found) >= limit:
            break
    return list(found)


def _name(context: str) -> str | None:
    m = DEFINITION.match("+" + context.strip())
    if m:
        name = m["name"] or m["cname"]
        return None if name in C_KEYWORDS else name
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", context)
    return m.group(1) if m and m.group(1) not in C_KEYWORDS else None


@dataclass
class FileDigest:
    path: str
    area: str
    kind: str
    status: str
    additions: int
    deletions: int
    symbols: list[str] = field(default_factory=list)
    has_patch: bool = True


@dataclass
class Digest:
    files: list[FileDigest]
    additions: int
    deletions: int

    @property
    def areas(self) -> dict[str, list[FileDigest]]:
        out: dict[str, list[FileDigest]] = {}
        for f in self.files:
            if f.kind not in ("generated", "vendored", "binary"):
                out.setdefault(f.area, []).append(f)
        return dict(sorted(out.items(), key=lambda kv: -sum(f.additions + f.deletions for f in kv[1])))

    def of_kind(self, *kinds: str) -> list[FileDigest]:
        return [f for f in self.files if f.kind in kinds]

    def to_dict(self) -> dict:
        return {"files": [asdict(f) for f in self.files], "additions": self.additions, "deletions": self.deletions}


def digest(changes: list[FileChange], areas: dict[str, str] | None = None,
           owners: list[tuple[str, str]] | None = None) -> Digest:
    files = [FileDigest(path=f.path, area=area_of(f.path, areas, owners), kind=kind_of(f), status=f.status, additions=f.additions,
                        deletions=f.deletions, symbols=symbols_of(f), has_patch=f.patch is not None)
             for f in changes]
    return Digest(files, sum(f.additions for f in changes), sum(f.deletions for f in changes))


def render(d: Digest, max_files_per_area: int = 12) -> list[str]:
    """The digest as Slack mrkdwn: a headline and one section per area (each within Slack's limits)."""
    tests = d.of_kind("test")
    config = d.of_kind("config")
    apart = d.of_kind("generated", "vendored", "binary")
    head = (f"*Digest* — {len(d.files)} file(s), +{d.additions}/−{d.deletions} · tests changed: {len(tests)}"
            f" · config/build/CI: {len(config)} · generated/vendored/binary set apart: {len(apart)}")
    if not tests and any(f.kind == "source" for f in d.files):
        head += "\n:warning: no test files changed"
    sections = [head]
    for area, files in d.areas.items():
        lines = [f"{lit(area, 120)} ({len(files)} file(s), +{sum(f.additions for f in files)}/"
                 f"−{sum(f.deletions for f in files)})"]
        for f in files[:max_files_per_area]:
            flag = {"test": " :test_tube:", "config": " :gear:"}.get(f.kind, "")
            syms = f"; {lits(f.symbols, 5)}" if f.symbols else ""
            lines.append(f"• {lit(f.path)} {f.status} +{f.additions}/−{f.deletions}{flag}{syms}")
        if len(files) > max_files_per_area:
            lines.append(f"• …and {len(files) - max_files_per_area} more")
        sections.append("\n".join(lines))
    if apart:
        shown = ", ".join(f"{lit(f.path)} ({f.kind})" for f in apart[:15])
        more = f" and {len(apart) - 15} more" if len(apart) > 15 else ""
        sections.append(f"*Set apart* (not summarised): {shown}{more}")
    return sections
