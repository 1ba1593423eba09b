"""`check`: each commit of BASE..HEAD against the index, minus evidence our own history had first; the
findings, with the spans that matched."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from jobs import fingerprint as fp
from jobs.provenance.index import Index, upstream_mirror
from jobs.provenance.signals import (
    CHERRY,
    CONTAIN_ABSTRACT,
    CONTAIN_EXACT,
    CONTAIN_SMALL,
    COVER_EXACT,
    COVER_SMALL,
    MIN_MATCHES,
    PREFIX,
    SMALL_MATCHES,
    FileSignals,
    ProvConfig,
    ProvenanceError,
    commit_signals,
)


@dataclass
class Finding:
    commit: str
    upstream_commit: str | None
    signal: str
    score: float
    files: list[str]
    spans: list[dict] = field(default_factory=list)
    detail: str = ""
    advice: str = ""

    def to_dict(self) -> dict:
        out = {"commit": self.commit, "upstream_commit": self.upstream_commit, "signal": self.signal,
               "score": round(self.score, 3), "files": self.files, "spans": self.spans}
        if self.detail:
            out["detail"] = self.detail
        if self.advice:
            out["advice"] = self.advice
        return out


POOLED_MATCHES = 16          # fingerprints from the forbidden set as a whole…
POOLED_COVER = 0.4           # …making up this share of the change's code
SWEEPING_PRINTS = 5000       # a change this large (in fingerprints) is a sweeping one
LOCK_S = 900                 # the longest one refresh of our own history may hold its lock

OWN_MIN = """
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if not v or tonumber(v) > tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end
end
return 1
"""


class OwnHistory:
    """Fingerprint → earliest commit time in our own repository's history (every local branch), kept in Redis
    and brought up to date incrementally at each check, so a large repository is walked once."""

    def __init__(self, redis, repo: pygit2.Repository):
        self.r = redis
        self.key = f"{PREFIX}:own:{hashlib.sha1(repo.path.encode()).hexdigest()[:12]}"
        self.update_script = redis.register_script(OWN_MIN)

    async def refresh(self, repo: pygit2.Repository, exclude: set[str], cfg: ProvConfig,
                      wait_s: float = LOCK_S, branches: list[str] | None = None) -> int:
        """Fingerprint the commits of `branches` (reviewed history: the default, release and protected branches;
        every local branch when None) not walked before; returns how many were walked. One
        refresh at a time per repository (a lock in the store): concurrent first checks wait for the one
        doing the work, then find nothing left to do."""
        lock = self.key + ":lock"
        token = f"{time.time():.6f}"
        deadline = time.monotonic() + wait_s
        while not await self.r.set(lock, token, nx=True, ex=LOCK_S):
            if time.monotonic() > deadline:
                raise ProvenanceError("our own history is being indexed by another process; try again shortly")
            await asyncio.sleep(0.2)
        try:
            done = json.loads(_s(await self.r.get(self.key + ":tips")) or "[]")
            names = [f"refs/heads/{b}" for b in branches] if branches is not None else \
                [r for r in repo.references if r.startswith("refs/heads/")]
            tips = [str(repo.references[r].peel(pygit2.Commit).id) for r in names if r in repo.references]
            batches = await asyncio.to_thread(_own_prints, repo, tips, done, exclude, cfg)
            for when, hashes in batches:
                for start in range(0, len(hashes), 1000):
                    await self.update_script(keys=[self.key], args=[when, *hashes[start:start + 1000]])
            await self.r.set(self.key + ":tips", json.dumps(sorted(set(tips) | set(done))))
            return len(batches)
        finally:
            if _s(await self.r.get(lock)) == token:
                await self.r.delete(lock)

    async def times(self, hashes: list[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for start in range(0, len(hashes), 1000):
            batch = hashes[start:start + 1000]
            for h, v in zip(batch, await self.r.hmget(self.key, [str(x) for x in batch])):
                if v is not None:
                    out[h] = int(v)
        return out


def _own_prints(repo, tips: list[str], done: list[str], exclude: set[str], cfg: ProvConfig) -> list[tuple[int, list[str]]]:
    """(commit time, fingerprints) of every own commit not seen by an earlier refresh, the change itself aside."""
    if not tips:
        return []
    walker = repo.walk(pygit2.Oid(hex=tips[0]), pygit2.enums.SortMode.TIME)
    for tip in tips[1:]:
        walker.push(pygit2.Oid(hex=tip))
    for tip in done:
        try:
            walker.hide(pygit2.Oid(hex=tip))
        except (KeyError, ValueError, pygit2.GitError):
            pass
    out = []
    for commit in walker:
        if str(commit.id) in exclude or len(commit.parents) != 1:
            continue
        _, files = commit_signals(repo, commit, cfg)
        hashes = sorted({str(h) for f in files for h in list(f.prints.exact) + list(f.prints.abstract)})
        if hashes:
            out.append((commit.commit_time, hashes))
    return out


async def check(cfg: ProvConfig, redis, repo: pygit2.Repository, base: pygit2.Commit, head: pygit2.Commit,
                data_dir: Path, created_at: float | None = None, stats: dict | None = None,
                branches: list[str] | None = None) -> list[Finding]:
    """The findings for every commit of base..head. `stats`, when given, receives `own_walked`: how many of
    our own commits this check had to fingerprint (0 once `index` has built our history)."""
    index = Index(redis)
    if await index.size() == 0:
        raise ProvenanceError("the upstream index is empty; build it with `python -m jobs.provenance index`")
    walker = repo.walk(head.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    walker.hide(base.id)
    commits = [c for c in walker]
    history = OwnHistory(redis, repo)
    walked = await history.refresh(repo, {str(c.id) for c in commits}, cfg, branches=branches)
    if stats is not None:
        stats["own_walked"] = walked
    upstream_repo = upstream_mirror(cfg, data_dir).repo()
    findings: list[Finding] = []
    for commit in commits:
        findings.extend(await _check_commit(cfg, index, repo, upstream_repo, commit, history, created_at))
    return findings


async def _meta(index: Index, sha: str) -> dict | None:
    raw = await index.r.hget(index.k["commits"], sha)
    return json.loads(raw) if raw else None


async def _check_commit(cfg, index: Index, repo, upstream_repo, commit, history: OwnHistory,
                        created_at) -> list[Finding]:
    sha = str(commit.id)
    out: list[Finding] = []

    async def forbidden(usha: str) -> dict | None:
        meta = await _meta(index, usha)
        if meta and created_at is not None and meta["date"] > created_at:
            return None            # the upstream commit came after the PR was opened: it copied us, not we it
        return meta

    if await forbidden(sha):
        out.append(Finding(sha, sha, "exact-commit", 1.0, [], detail="the commit itself is in the forbidden set"))
        return out
    for ref in CHERRY.findall(commit.message or ""):
        try:
            full = str(upstream_repo.revparse_single(ref).peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError):
            continue
        if await forbidden(full):
            out.append(Finding(sha, full, "cherry-pick-reference", 1.0, [], detail=f"message says cherry picked from {ref}"))
    if cfg.upstream_name:
        pattern = re.compile(rf"(?:{re.escape(cfg.upstream_name)}#|github\.com/{re.escape(cfg.upstream_name)}/pull/)(\d+)", re.I)
        for number in set(pattern.findall(commit.message or "")):
            usha = await index.r.hget(index.k["prnum"], number)
            usha = usha.decode() if isinstance(usha, bytes) else usha
            if usha and await forbidden(usha):
                out.append(Finding(sha, usha, "upstream-pr-reference", 0.9, [],
                                   detail=f"message references {cfg.upstream_name}#{number}"))
    if len(commit.parents) != 1:
        return out
    skipped: list[tuple[str, str]] = []
    pid, files = await asyncio.to_thread(commit_signals, repo, commit, cfg, skipped)
    for path, why in skipped:
        out.append(Finding(sha, None, "not-checked", 0.0, [path], detail=f"not fingerprinted: {why}"))
    own = await history.times([h for f in files for h in list(f.prints.exact) + list(f.prints.abstract)])
    for f in files:
        markers = fp.licence_markers(f.added.text)
        if markers:
            out.append(Finding(sha, None, "licence-text", 0.8, [f.path], detail="added text: " + ", ".join(markers)))
    usha = await index.r.hget(index.k["patchid"], pid) if pid else None
    if usha and await forbidden(_s(usha)) and not _owned(own, files, await _meta(index, _s(usha))) \
            and await _shares_code(index, _s(usha), files, own, await _meta(index, _s(usha))):
        out.append(Finding(sha, _s(usha), "patch-id", 1.0, [f.path for f in files]))
        return out
    per_upstream: dict[str, dict] = defaultdict(lambda: {"signals": set(), "files": set(), "exact": {}, "abstract": {}})
    for f in files:
        hit = await index.r.hget(index.k["filepatch"], f.patch_id) if f.added.lines and f.patch_id else None
        if hit:
            u, _, _path = _s(hit).partition("|")
            per_upstream[u]["signals"].add("file-patch-id")
            per_upstream[u]["files"].add(f.path)
        for h in f.hunks:
            hit = await index.r.hget(index.k["hunk"], h)
            if hit:
                u = _s(hit).partition("|")[0]
                per_upstream[u]["signals"].add("hunk")
                per_upstream[u]["files"].add(f.path)
    exact_all = {h: (f, i) for f in files for h, i in f.prints.exact.items()}
    abstract_all = {h: (f, i) for f in files for h, i in f.prints.abstract.items()}
    for kind, prints_, key in (("exact", exact_all, "fp"), ("abstract", abstract_all, "afp")):
        hashes = list(prints_)
        for start in range(0, len(hashes), 500):
            batch = hashes[start:start + 500]
            values = await index.r.hmget(index.k[key], [str(h) for h in batch])
            for printed, u in zip(batch, values):
                for one in _s(u).split(",") if u else []:
                    per_upstream[one][kind][printed] = prints_[printed]
    pooled: dict[int, str] = {}            # fingerprint -> a forbidden commit it comes from (own-first aside)
    for usha, hits in per_upstream.items():
        meta = await forbidden(usha)
        if meta is None:
            continue
        for h in hits["exact"]:
            if not (h in own and own[h] < meta["date"]):
                pooled.setdefault(h, usha)
        counts = json.loads(_s(await index.r.hget(index.k["counts"], usha)) or "[0, 0]")
        # Evidence our own repository had before the upstream commit is not evidence.
        exact = {h: v for h, v in hits["exact"].items() if not (h in own and own[h] < meta["date"])}
        abstract = {h: v for h, v in hits["abstract"].items() if not (h in own and own[h] < meta["date"])}
        owned = _owned(own, [f for f in files if f.path in hits["files"]], meta)
        signal, score = "", 0.0
        # A hunk or file whose diff equals the upstream's counts only with code of its own in the index: code
        # the allowed (BSD) corpus has, or our history had first, is in neither `exact` nor `abstract`.
        # In a sweeping change (a formatter run over the tree, say) an identical small hunk is a coincidence
        # unless enough fingerprints back it.
        sweeping = len(exact_all) > SWEEPING_PRINTS
        if hits["signals"] and not owned and (exact or abstract) and (not sweeping or len(exact) >= MIN_MATCHES):
            signal, score = ("file-patch-id" if "file-patch-id" in hits["signals"] else "hunk"), 0.95
        contain = len(exact) / counts[0] if counts[0] else 0
        cover = len(exact) / len(exact_all) if exact_all else 0
        if (len(exact) >= MIN_MATCHES and (contain >= CONTAIN_EXACT or cover >= COVER_EXACT)) or \
                (len(exact) >= SMALL_MATCHES and cover >= COVER_SMALL and contain >= CONTAIN_SMALL):
            if max(contain, cover) > score or not signal:
                signal, score = "winnowing", max(contain, cover)
        a_contain = len(abstract) / counts[1] if counts[1] else 0
        a_cover = len(abstract) / len(abstract_all) if abstract_all else 0
        if not signal and ((len(abstract) >= MIN_MATCHES and a_contain >= CONTAIN_ABSTRACT) or
                           (len(abstract) >= SMALL_MATCHES and a_cover >= COVER_SMALL and a_contain >= CONTAIN_SMALL)):
            signal, score = "winnowing-renamed", a_contain
        if not signal:
            continue
        matched = exact if signal != "winnowing-renamed" else abstract
        spans = _spans(upstream_repo, usha, matched, signal == "winnowing-renamed", cfg)
        names = sorted({v[0].path for v in matched.values()} | (hits["files"] if signal in ("hunk", "file-patch-id") else set()))
        out.append(Finding(sha, usha, signal, min(score, 1.0), names, spans,
                           detail=f"{len(matched)} fingerprint(s) shared; upstream: {meta['subject']}"))
    # Code copied from several forbidden commits at once (a copy of code that grew over a series upstream):
    # no one commit passes its bar, but together most of the change is forbidden code.
    pooled_cover = len(pooled) / len(exact_all) if exact_all else 0
    if not any(f.upstream_commit for f in out) and len(pooled) >= POOLED_MATCHES and pooled_cover >= POOLED_COVER:
        top = Counter(pooled.values()).most_common(1)[0][0]
        meta = await _meta(index, top)
        matched = {h: exact_all[h] for h, u in pooled.items() if u == top}
        out.append(Finding(sha, top, "winnowing-forbidden-set", min(pooled_cover, 1.0),
                           sorted({exact_all[h][0].path for h in pooled}),
                           _spans(upstream_repo, top, matched, False, cfg),
                           detail=f"{len(pooled)} of the change's {len(exact_all)} fingerprints come from "
                                  f"{len(set(pooled.values()))} forbidden commits; the most from: "
                                  f"{(meta or {}).get('subject', top)}"))
    return out


async def _shares_code(index: Index, usha: str, files: list[FileSignals], own: dict, meta: dict | None) -> bool:
    """Whether the change shares at least one fingerprint with upstream commit `usha` that neither the allowed
    corpus nor our own earlier history explains: a whole-diff match on code everybody has is no evidence."""
    prints_ = [h for f in files for h in f.prints.exact]
    for start in range(0, len(prints_), 500):
        batch = prints_[start:start + 500]
        for h, v in zip(batch, await index.r.hmget(index.k["fp"], [str(x) for x in batch])):
            if v and usha in _s(v).split(",") and not (meta and h in own and own[h] < meta["date"]):
                return True
    return False


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _owned(own: dict, files: list[FileSignals], meta: dict | None) -> bool:
    """True when our history had most of these files' added code before the upstream commit."""
    if not meta:
        return False
    prints_ = [h for f in files for h in f.prints.exact]
    if not prints_:
        return False
    early = sum(1 for h in prints_ if h in own and own[h] < meta["date"])
    return early / len(prints_) >= 0.5


def _spans(upstream_repo, usha: str, matched: dict, abstract: bool, cfg: ProvConfig) -> list[dict]:
    """Matched line ranges side by side: ours (file, lines) and upstream's (file, lines)."""
    try:
        ucommit = upstream_repo[pygit2.Oid(hex=usha)]
        _, ufiles = commit_signals(upstream_repo, ucommit, cfg)
    except (KeyError, ValueError, pygit2.GitError):
        ufiles = []
    where_up: dict[int, tuple[FileSignals, int]] = {}
    for uf in ufiles:
        table = uf.prints.abstract if abstract else uf.prints.exact
        for h, i in table.items():
            where_up.setdefault(h, (uf, i))
    groups: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for h, (f, i) in matched.items():
        line = f.prints.token_lines[i] if i < len(f.prints.token_lines) else 0
        if h in where_up:
            up, ui = where_up[h]
            their_line = up.prints.token_lines[ui] if ui < len(up.prints.token_lines) else 0
            groups[(f.path, up.path)].append((line, their_line))
        else:
            groups[(f.path, "")].append((line, 0))
    spans = []
    for (path, upath), pairs in groups.items():
        our_lines = [p[0] for p in pairs]
        their_lines = [p[1] for p in pairs if p[1]]
        spans.append({"file": path, "lines": [min(our_lines), max(our_lines)], "upstream_file": upath or None,
                      "upstream_lines": [min(their_lines), max(their_lines)] if their_lines else None})
    return spans


def reviewed_branches(repo_cfg) -> list[str]:
    """Our own reviewed history: the default branch, every release branch and the protected branches."""
    return list(dict.fromkeys([repo_cfg.default_branch, *repo_cfg.releases.values(), *repo_cfg.protected_branches]))


async def build_own(cfg: ProvConfig, redis, repo: pygit2.Repository, branches: list[str] | None) -> int:
    """Our own history's fingerprints, brought up to date (part of `index`, so no check has to do it)."""
    return await OwnHistory(redis, repo).refresh(repo, set(), cfg, branches=branches)
