"""The guard's self-test on the live repository: copies of a sample of forbidden upstream commits, made in memory
on top of the current default branch in several disguises, must be caught; a sample of recent genuine commits
of the branch must stay clean. The report gives caught / missed / false alarms with every case, so a
maintainer can quote the guard's accuracy on their own repository today.

Nothing is pushed or referenced: the copies are commit objects in the mirror that no branch points at.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field

import pygit2

from jobs import git
from jobs.provenance.index import Index
from jobs.provenance.score import check
from jobs.provenance.signals import ProvConfig, ProvenanceError

VARIANTS = ("verbatim", "rebranded", "reformatted", "partial")
SIG = pygit2.Signature("provenance self-test", "selftest@invalid", 1_700_000_000, 0)
MIN_PRINTS = 12          # upstream commits with less code than this are not sampled (nothing to recognise)


@dataclass
class Case:
    kind: str                    # "copy" or "genuine"
    variant: str                 # a VARIANTS entry, or "as merged"
    commit: str                  # the upstream commit copied, or our genuine commit
    subject: str
    flagged: bool
    signals: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def right(self) -> bool:
        return self.flagged if self.kind == "copy" else not self.flagged


@dataclass
class Report:
    cases: list[Case]

    def counts(self) -> dict:
        copies = [c for c in self.cases if c.kind == "copy"]
        genuine = [c for c in self.cases if c.kind == "genuine"]
        by_variant = {v: [sum(c.flagged for c in copies if c.variant == v), sum(c.variant == v for c in copies)]
                      for v in VARIANTS}
        return {"copies": len(copies), "caught": sum(c.flagged for c in copies),
                "missed": sum(not c.flagged for c in copies), "genuine": len(genuine),
                "false_alarms": sum(c.flagged for c in genuine), "by_variant": by_variant}

    def to_dict(self) -> dict:
        return {**self.counts(), "cases": [asdict(c) for c in self.cases]}


def _sample(items: list[str], n: int, seed: str) -> list[str]:
    """A deterministic sample: the same repo and seed give the same cases."""
    return sorted(items, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())[:n]


# ------------------------------------------------------------------------------------------------ disguises

def _added_lines(old: str, new: str) -> set[int]:
    """Indexes of `new`'s lines that the change added."""
    out: set[int] = set()
    sm = difflib.SequenceMatcher(a=old.splitlines(), b=new.splitlines(), autojunk=False)
    for tag, _, _, j1, j2 in sm.get_opcodes():
        if tag in ("replace", "insert"):
            out.update(range(j1, j2))
    return out


def _rebrand(line: str, normalize: dict[str, str]) -> str:
    for theirs, ours in normalize.items():
        line = line.replace(theirs, ours)
    return line


def _reformat(line: str) -> str:
    """Another hand's formatting: indentation halved, spaces around operators and after commas changed."""
    stripped = line.lstrip(" \t")
    indent = len(line) - len(stripped)
    body = re.sub(r"\s*([=+\-*/<>!]=|&&|\|\|)\s*", r" \1 ", stripped)
    body = re.sub(r",(?=\S)", ", ", body)
    return " " * (indent // 2) + body


def _partial(old: str, new: str) -> str:
    """A partial copy: the change's biggest hunks, about half of the lines it adds, the rest left as it was
    (a copier takes the substance, not the odd comment); a change of one hunk keeps its first half."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    changes = [k for k, (tag, *_) in enumerate(ops) if tag != "equal"]
    added = {k: ops[k][4] - ops[k][3] for k in changes}
    keep: set[int] = set()
    total = sum(added.values())
    for k in sorted(changes, key=lambda k: -added[k]):
        if sum(added[x] for x in keep) * 2 >= total:
            break
        keep.add(k)
    out: list[str] = []
    for k, (tag, i1, i2, j1, j2) in enumerate(ops):
        if tag == "equal":
            out.extend(a[i1:i2])
        elif len(changes) == 1:
            out.extend(b[j1:j1 + max(1, (j2 - j1) // 2)])
        else:
            out.extend(b[j1:j2] if k in keep else a[i1:i2])
    return "".join(out)


def disguise(variant: str, old: str, new: str, normalize: dict[str, str]) -> str:
    """`new` (a file after the copy) in one of the disguises; only the lines the copy added are touched."""
    if variant == "verbatim":
        return new
    if variant == "partial":
        return _partial(old, new)
    added = _added_lines(old, new)
    lines = new.splitlines(keepends=True)
    for i in added:
        if i < len(lines):
            end = "\n" if lines[i].endswith("\n") else ""
            text = lines[i].rstrip("\n")
            text = _rebrand(text, normalize) if variant == "rebranded" else _reformat(text)
            lines[i] = text + end
    return "".join(lines)


def copy_commit(repo: pygit2.Repository, upstream: pygit2.Repository, usha: str, tip: pygit2.Commit,
                variant: str, normalize: dict[str, str]) -> str | None:
    """The upstream commit re-applied on top of `tip` (a three-way merge in memory; where it conflicts, the
    upstream's side of each conflict), disguised; the new commit's id, or None when nothing would change."""
    ucommit = git.commit_at(upstream, usha)
    if len(ucommit.parents) != 1:
        return None
    parent = ucommit.parents[0]
    files: dict[str, str] = {}
    diff = upstream.diff(parent, ucommit, context_lines=0)
    for patch in diff:
        if patch is None or patch.delta.is_binary or patch.delta.status_char() == "D":
            continue
        path = patch.delta.new_file.path
        theirs_old = git.file_at(upstream, parent, path) or ""
        theirs_new = git.file_at(upstream, ucommit, path) or ""
        ours = git.file_at(repo, tip, path)
        merged = theirs_new if ours is None else _merge3(repo, path, theirs_old, ours, theirs_new)
        files[path] = disguise(variant, ours or "", merged, normalize)
    files = {p: t for p, t in files.items() if t != (git.file_at(repo, tip, p) or "")}
    if not files:
        return None
    tree = git.tree_with_files(repo, tip.tree, files)
    message = f"Self-test copy ({variant})\n"
    return str(repo.create_commit(None, SIG, SIG, message, pygit2.Oid(hex=tree), [tip.id]))


def _merge3(repo: pygit2.Repository, path: str, base: str, ours: str, theirs: str) -> str:
    """git's three-way file merge; where both sides changed the same lines, the upstream's side."""
    def entry(text: str) -> pygit2.IndexEntry:
        return pygit2.IndexEntry(path, repo.create_blob(text.encode()), pygit2.enums.FileMode.BLOB)

    merged = repo.merge_file_from_index(entry(base), entry(ours), entry(theirs))
    text = merged.contents if hasattr(merged, "contents") else str(merged)
    return _take_theirs(text)


def _take_theirs(text: str) -> str:
    """Each conflict region resolved to the upstream's side (`git merge -X theirs`): the copier applies the
    upstream hunks over our lines, the rest of our file stays ours."""
    out: list[str] = []
    state = "outside"
    for line in text.splitlines(keepends=True):
        if state == "outside" and line.startswith("<<<<<<< "):
            state = "ours"
        elif state == "ours" and (line.startswith("=======") and line.rstrip("\n") == "======="):
            state = "theirs"
        elif state == "ours" and line.startswith("||||||| "):
            state = "base"
        elif state == "base" and line.rstrip("\n") == "=======":
            state = "theirs"
        elif state == "theirs" and line.startswith(">>>>>>> "):
            state = "outside"
        elif state in ("outside", "theirs"):
            out.append(line)
    return "".join(out)


# ------------------------------------------------------------------------------------------------ the run

async def run_selftest(cfg: ProvConfig, redis, repo: pygit2.Repository, branch: str, upstream: pygit2.Repository,
                       data_dir, n: int = 10, genuine: int = 20, seed: str = "selftest",
                       progress=None) -> Report:
    """`n` forbidden upstream commits copied in each disguise onto `branch`'s tip, and the `genuine` most
    recent single-parent commits of `branch`, each checked as the guard checks a PR."""
    index = Index(redis)
    if await index.size() == 0:
        raise ProvenanceError("the upstream index is empty; build it with `python -m jobs.provenance index`")
    tip = git.branch_tip(repo, branch)
    if tip is None:
        raise ProvenanceError(f"there is no branch {branch} to test on")
    counts = {k.decode() if isinstance(k, bytes) else k: json.loads(v)
              for k, v in (await redis.hgetall(index.k["counts"])).items()}
    candidates = [sha for sha, (exact, _) in counts.items() if exact >= MIN_PRINTS]
    cases: list[Case] = []
    for usha in _sample(candidates, n, seed):
        meta = json.loads(await redis.hget(index.k["commits"], usha) or b"{}")
        for variant in VARIANTS:
            sha = await asyncio.to_thread(copy_commit, repo, upstream, usha, tip, variant, cfg.normalize)
            if sha is None:
                continue
            found = await check(cfg, redis, repo, tip, git.commit_at(repo, sha), data_dir, created_at=None,
                                branches=[branch])
            # Caught: flagged as derived from the forbidden history (the evidence may name another forbidden
            # commit carrying the same code).
            hits = [f for f in found if f.upstream_commit or f.signal == "licence-text"]
            cases.append(Case("copy", variant, usha, meta.get("subject", "")[:120], bool(hits),
                              sorted({f.signal for f in hits})))
            if progress:
                progress(cases[-1])
    walker = repo.walk(tip.id, pygit2.enums.SortMode.TOPOLOGICAL)
    recent = [c for _, c in zip(range(genuine * 4), walker) if len(c.parents) == 1][:genuine]
    for commit in recent:
        found = await check(cfg, redis, repo, commit.parents[0], commit, data_dir, created_at=commit.commit_time,
                            branches=[branch])
        alarms = [f for f in found if f.signal != "not-checked"]
        cases.append(Case("genuine", "as merged", str(commit.id), commit.message.splitlines()[0][:120] if
                          commit.message else "", bool(alarms), sorted({f.signal for f in alarms}),
                          note="; ".join(f"{f.signal} ← {str(f.upstream_commit)[:10]}" for f in alarms[:3])))
        if progress:
            progress(cases[-1])
    return Report(cases)
