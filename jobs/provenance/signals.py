"""What the guard reads from a commit: its settings (`[provenance]`), and each file's signals (patch-id,
hunk hashes, winnowing fingerprints as written and with identifiers abstracted)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pygit2

from jobs import fingerprint as fp

PREFIX = "bot:prov"
MIN_MATCHES = 8              # winnowing fingerprints in common before anything is said
CONTAIN_EXACT = 0.5          # share of the upstream commit's fingerprints found in the change
COVER_EXACT = 0.25           # share of the change's fingerprints that come from the upstream commit
PER_PRINT = 4                # upstream commits remembered per fingerprint
APPEND = """
local sha, limit = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if not v then redis.call('HSET', KEYS[1], ARGV[i], sha)
  elseif not string.find(v, sha, 1, true) and select(2, string.gsub(v, ',', '')) < limit - 1 then
    redis.call('HSET', KEYS[1], ARGV[i], v .. ',' .. sha)
  end
end
return 1
"""
CONTAIN_ABSTRACT = 0.5       # renamed identifiers
# A small change (a partial copy of a small commit) is judged on fewer fingerprints, but only when most of the
# change's own code comes from the one upstream commit and a good part of that commit's code is in it.
SMALL_MATCHES = 5
COVER_SMALL = 0.5
CONTAIN_SMALL = 0.3
CHERRY = re.compile(r"cherry[- ]picked from commit ([0-9a-f]{7,40})", re.I)


class ProvenanceError(Exception):
    """Bad provenance config or refs; the message is for people."""


@dataclass
class ProvConfig:
    upstream: str
    tainted: list[str]
    allowed: list[str]
    normalize: dict[str, str] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    github: str = ""            # the upstream's owner/name, for PR references; derived from the URL if unset

    @property
    def upstream_name(self) -> str:
        if self.github:
            return self.github
        m = re.search(r"[:/]([\w.-]+/[\w.-]+?)(?:\.git)?/?$", self.upstream)
        return m.group(1) if m else ""


def load_config(config) -> ProvConfig:
    """The guard's settings from `[provenance]` (checked with the rest of the config at start-up)."""
    p = config.provenance
    if p is None:
        raise ProvenanceError("bot.toml has no [provenance] table (upstream, tainted, allowed)")
    return ProvConfig(p.upstream, list(p.tainted), list(p.allowed), dict(p.normalize), list(p.exclude), p.github)


def resolve_name(repo: pygit2.Repository, name: str) -> pygit2.Commit:
    for ref in (f"refs/heads/{name}", f"refs/tags/{name}", name):
        try:
            return repo.revparse_single(ref).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            continue
    raise ProvenanceError(f"{name!r} is neither a branch, a tag nor a commit of the repository")


MAX_PATCH = 2_000_000     # characters of one file's patch that are fingerprinted
MAX_LINE = 20_000         # a longer line marks a minified or generated file


def too_big(text: str) -> str:
    """Why a file's patch is not fingerprinted ('' when it is)."""
    if len(text) > MAX_PATCH:
        return f"{len(text):,} characters of diff (over {MAX_PATCH:,})"
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if end - start > MAX_LINE:
            return f"a line of {end - start:,} characters (minified or generated?)"
        start = end + 1
    return ""


@dataclass
class FileSignals:
    path: str
    added: fp.Added
    prints: fp.Prints
    hunks: set[str]
    patch_id: str


def commit_signals(repo: pygit2.Repository, commit: pygit2.Commit, cfg: ProvConfig,
                   skipped: list[tuple[str, str]] | None = None) -> tuple[str, list[FileSignals]]:
    """The commit's patch-id and each file's signals. Files too big to fingerprint in bounded time (over
    MAX_PATCH characters of patch, or a line over MAX_LINE: minified or generated) are left out and, when
    `skipped` is given, listed there with the reason. CPU-bound: callers run it in a thread."""
    diff = repo.diff(commit.parents[0], commit, context_lines=0)
    diff.find_similar()
    files = []
    all_hunks: dict[str, list[list[str]]] = {}
    for patch in diff:
        if patch is None:
            continue
        path = patch.delta.new_file.path
        if patch.delta.is_binary or any(path.startswith(e) for e in cfg.exclude):
            continue
        text = patch.text or ""
        why = too_big(text)
        if why:
            if skipped is not None:
                skipped.append((path, why))
            continue
        added, hunks = fp.parse_patch(path, text[text.find("@@"):] if "@@" in text else "")
        all_hunks[path] = hunks
        files.append(FileSignals(path, added, fp.prints(added, cfg.normalize), fp.hunk_hashes(hunks, cfg.normalize),
                                 fp.code_patch_id({path: hunks}, cfg.normalize)))
    return fp.code_patch_id(all_hunks, cfg.normalize), files


def tree_prints(repo: pygit2.Repository, tree: pygit2.Tree, cfg: ProvConfig, prefix: str = "") -> tuple[set, set]:
    exact, abstract = set(), set()
    for entry in tree:
        path = prefix + (entry.name or "")
        if entry.type_str == "tree":
            e, a = tree_prints(repo, repo[entry.id], cfg, path + "/")  # type: ignore[arg-type]
            exact |= e
            abstract |= a
        elif entry.type_str == "blob" and not any(path.startswith(x) for x in cfg.exclude):
            blob = repo[entry.id]
            if not isinstance(blob, pygit2.Blob) or blob.is_binary or blob.size > 2_000_000:
                continue
            lines = blob.data.decode("utf-8", "replace").split("\n")
            p = fp.prints(fp.Added(path, list(enumerate(lines, 1))), cfg.normalize)
            exact |= set(p.exact)
            abstract |= set(p.abstract)
    return exact, abstract
