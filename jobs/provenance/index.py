"""The forbidden set's index in Redis/Valkey: built (and refreshed incrementally) from the upstream mirror,
minus whatever the allowed corpus already contains."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path

import pygit2

from jobs import git
from jobs.provenance.signals import (
    APPEND,
    PER_PRINT,
    PREFIX,
    FileSignals,
    ProvConfig,
    commit_signals,
    resolve_name,
    tree_prints,
)


class Index:
    """The forbidden set's signals in Redis (hashes under bot:prov:*)."""

    def __init__(self, redis, prefix: str = PREFIX):
        self.r = redis
        self.append = redis.register_script(APPEND)
        self.k = {name: f"{prefix}:{name}" for name in
                  ("commits", "patchid", "filepatch", "hunk", "fp", "afp", "counts", "prnum", "meta")}

    async def size(self) -> int:
        return await self.r.hlen(self.k["commits"])

    async def add(self, sha: str, meta: dict, pid: str, files: list[FileSignals], allowed: tuple[set, set]) -> None:
        exact = {h for f in files for h in f.prints.exact} - allowed[0]
        abstract = {h for f in files for h in f.prints.abstract} - allowed[1]
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(self.k["commits"], sha, json.dumps(meta))
        pipe.hsetnx(self.k["patchid"], pid, sha)
        for f in files:
            if f.added.lines and f.patch_id:
                pipe.hsetnx(self.k["filepatch"], f.patch_id, f"{sha}|{f.path}")
            for h in f.hunks:
                pipe.hsetnx(self.k["hunk"], h, f"{sha}|{f.path}")
        for key, hashes in (("fp", exact), ("afp", abstract)):
            ordered = [str(h) for h in hashes]
            for start in range(0, len(ordered), 1000):   # one script call per thousand fingerprints
                await self.append(keys=[self.k[key]], args=[sha, PER_PRINT, *ordered[start:start + 1000]],
                                  client=pipe)
        pipe.hset(self.k["counts"], sha, json.dumps([len(exact), len(abstract)]))
        m = re.search(r"\(#(\d+)\)\s*$", meta["subject"])
        if m:
            pipe.hsetnx(self.k["prnum"], m.group(1), sha)
        await pipe.execute()


def upstream_mirror(cfg: ProvConfig, data_dir: Path) -> git.Mirror:
    name = "upstream/" + hashlib.sha1(cfg.upstream.encode()).hexdigest()[:12]
    return git.Mirror(data_dir, name, cfg.upstream)


async def build_index(cfg: ProvConfig, redis, data_dir: Path, say=print) -> dict:
    """Build or refresh (incrementally) the index of the forbidden set."""
    mirror = upstream_mirror(cfg, data_dir)
    repo = await asyncio.to_thread(mirror.sync)
    tainted = [resolve_name(repo, t) for t in cfg.tainted]
    allowed = [resolve_name(repo, a) for a in cfg.allowed]
    index = Index(redis)
    done_tips = json.loads(await redis.hget(index.k["meta"], "tips") or "[]")
    allowed_prints = await asyncio.to_thread(_allowed_prints, repo, allowed, cfg)
    walker = repo.walk(tainted[0].id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    for t in tainted[1:]:
        walker.push(t.id)
    for a in allowed:
        walker.hide(a.id)
    for tip in done_tips:
        try:
            walker.hide(pygit2.Oid(hex=tip))
        except (KeyError, ValueError, pygit2.GitError):
            pass
    count = 0
    for commit in walker:
        if len(commit.parents) != 1:
            continue
        pid, files = commit_signals(repo, commit, cfg)
        meta = {"date": commit.commit_time, "subject": commit.message.splitlines()[0][:200] if commit.message else ""}
        await index.add(str(commit.id), meta, pid, files, allowed_prints)
        count += 1
        if count % 500 == 0:
            say(f"indexed {count} commits…")
    await redis.hset(index.k["meta"], "tips", json.dumps([str(t.id) for t in tainted]))
    total = await index.size()
    say(f"index: {count} new forbidden commit(s), {total} in all")
    return {"new": count, "total": total}


def _allowed_prints(repo, allowed: list[pygit2.Commit], cfg: ProvConfig) -> tuple[set, set]:
    exact, abstract = set(), set()
    for commit in allowed:
        e, a = tree_prints(repo, commit.tree, cfg)
        exact |= e
        abstract |= a
    return exact, abstract
