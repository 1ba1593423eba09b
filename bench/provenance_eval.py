"""Provenance accuracy on real public history: Redis's commits after its licence change (the forbidden set)
re-applied to Valkey in ten disguises, and Valkey's own commits since the fork as negatives, a hard quarter of
them named by kind (coordinated CVE fixes, BSD-era backports, large refactors, licence and branding commits,
Valkey-first fixes Redis copied later). Prints the catch rate per disguise, the false-alarm rate per kind, and
every miss and false alarm.

Needs local clones of both repositories (bare is fine), by default the ones `fetch` puts under /work/.mirror:
    python bench/provenance_eval.py [--redis PATH] [--valkey PATH] [--copies 40] [--quick]
The cases are drawn deterministically from the histories (seeded by commit id): the same clones give the same
evaluation set; `bench/provenance_eval_cases.json` records the last one drawn. Without the clones it says so
and exits 0 (it is not part of the test suite)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.store import EmbeddedValkey, connect  # noqa: E402
from jobs import git  # noqa: E402
from jobs.provenance import ProvConfig, build_index, build_own, check  # noqa: E402
from jobs.provenance.index import Index  # noqa: E402
from jobs.provenance.selftest import copy_commit, disguise  # noqa: E402
from jobs.provenance.signals import commit_signals  # noqa: E402

HERE = Path(__file__).resolve().parent
LICENCE_CHANGE = "0b3439692"          # redis: "Change license from BSD-3 to dual RSALv2+SSPLv1 (#13157)"
NORMALIZE = {"Redis": "Valkey", "REDIS": "VALKEY", "redis": "valkey", "RedisModule": "ValkeyModule",
             "REDISMODULE_": "VALKEYMODULE_", "RM_": "VM_", "master": "primary", "slave": "replica"}
VARIANTS = ("verbatim", "rebranded", "reformatted", "partial", "identifiers", "renamed-file", "squashed",
            "fake-date", "series", "combined")
C_WORDS = set("""auto break case char const continue default do double else enum extern float for goto if inline int
long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
NULL size_t ssize_t uint8_t uint16_t uint32_t uint64_t int8_t int16_t int32_t int64_t bool true false include define
ifdef ifndef endif""".split())
SIG = pygit2.Signature("eval", "eval@invalid", 1_730_000_000, 0)


def seeded(items, n: int, seed: str):
    return sorted(items, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())[:n]


# ------------------------------------------------------------------------------------------------ copies

def rename_identifiers(text: str) -> str:
    return re.sub(r"\b([A-Za-z_][A-Za-z0-9_]{4,})\b",
                  lambda m: m.group(1) if m.group(1) in C_WORDS else m.group(1) + "X", text)


def make_copy(down, up, usha: str, tip, variant: str) -> list[str]:
    """The forbidden commit `usha` re-applied on `tip` in one disguise: the commits made (oldest first)."""
    base = {"combined": "rebranded", "squashed": "verbatim", "renamed-file": "verbatim", "fake-date": "verbatim",
            "series": "verbatim", "identifiers": "verbatim"}.get(variant, variant)
    sha = copy_commit(down, up, usha, tip, "partial" if variant == "combined" else base, NORMALIZE)
    if sha is None:
        return []
    commit = git.commit_at(down, sha)
    files = {d.new_file.path: git.file_at(down, commit, d.new_file.path)
             for d in down.diff(tip, commit).deltas if d.status_char() != "D"}
    if variant == "combined":
        files = {p: disguise("rebranded", git.file_at(down, tip, p) or "", t or "", NORMALIZE) for p, t in files.items()}
    if variant == "identifiers":
        files = {p: _only_added(git.file_at(down, tip, p) or "", t or "", rename_identifiers) for p, t in files.items()}
    if variant == "renamed-file":
        renamed = {}
        for p, t in files.items():
            if git.file_at(down, tip, p) is None:          # a new file: the copy puts it elsewhere
                stem, dot, ext = p.rpartition(".")
                renamed[f"{stem}_impl{dot}{ext}" if dot else p + "_impl"] = t
            else:
                renamed[p] = t
        files = renamed
    if variant in ("squashed", "combined"):
        own = git.file_at(down, tip, "src/t_string.c") or ""
        files["src/t_string_helpers.c"] = "/* helpers */\n" + own[: len(own) // 3]      # unrelated own work
    when = 1_650_000_000 if variant == "fake-date" else 1_730_000_000
    sig = pygit2.Signature("eval", "eval@invalid", when, 0)
    message = ("Improve things\n\nDate: Mon, 4 Apr 2022 10:00:00 +0000\n" if variant == "fake-date"
               else f"Downstream change ({variant})\n")
    if variant != "series":
        tree = git.tree_with_files(down, tip.tree, files)
        return [str(down.create_commit(None, sig, sig, message, pygit2.Oid(hex=tree), [tip.id]))]
    # A series: the copy's files spread over three commits.
    out, parent = [], tip
    paths = sorted(files)
    for k in range(3):
        part = {p: files[p] for p in paths[k::3]}
        if not part:
            continue
        tree = git.tree_with_files(down, parent.tree, part)
        sha = str(down.create_commit(None, sig, sig, f"Part {k + 1}\n", pygit2.Oid(hex=tree), [parent.id]))
        out.append(sha)
        parent = git.commit_at(down, sha)
    if len(out) == 1:                                  # one file: split its lines instead
        text = files[paths[0]] or ""
        lines = text.splitlines(keepends=True)
        out, parent = [], tip
        for k in (1, 2, 3):
            part = "".join(lines[: len(lines) * k // 3])
            tree = git.tree_with_files(down, parent.tree, {paths[0]: part})
            sha = str(down.create_commit(None, sig, sig, f"Part {k}\n", pygit2.Oid(hex=tree), [parent.id]))
            out.append(sha)
            parent = git.commit_at(down, sha)
    return out


def _only_added(old: str, new: str, fn) -> str:
    import difflib

    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        out.extend(a[i1:i2] if tag == "equal" else [fn(x) for x in b[j1:j2]])
    return "".join(out)


CODE = re.compile(r"\.(c|h|cc|cpp|hpp|tcl|py|lua|sh|rb|js|go|rs)$")


def changes_code(repo, sha: str) -> bool:
    commit = git.commit_at(repo, sha)
    if len(commit.parents) != 1:
        return False
    stats = [(d.new_file.path, d) for d in repo.diff(commit.parents[0], commit).deltas]
    return any(CODE.search(path) for path, _ in stats)


# ------------------------------------------------------------------------------------------------ negatives

def negative_kind(repo, commit, redis_prs_before: int) -> str:
    msg = commit.message or ""
    first = msg.splitlines()[0] if msg else ""
    if re.search(r"CVE-\d{4}-\d+", msg):
        return "cve"
    if re.search(r"licen[cs]e|copyright|rebrand|\bbrand|redis.{0,20}valkey|valkey.{0,20}redis|rename", first, re.I):
        return "licence-branding"
    m = re.search(r"\(#(\d+)\)\s*$", first)
    if "cherry picked from" in msg or (m and 10_000 <= int(m.group(1)) < redis_prs_before and "redis" in msg.lower()):
        return "bsd-backport"
    stats = repo.diff(commit.parents[0], commit).stats
    if stats.files_changed >= 30 or stats.insertions + stats.deletions >= 2000:
        return "large-refactor"
    return "regular"


async def later_copied_by_redis(redis, index: Index, repo, commit, cfg) -> bool:
    """A Valkey commit whose code a later forbidden Redis commit carries (Valkey wrote it first)."""
    _, files = await asyncio.to_thread(commit_signals, repo, commit, cfg)
    prints = [str(h) for f in files for h in f.prints.exact]
    if len(prints) < 8:
        return False
    hits = Counter()
    for start in range(0, len(prints), 500):
        for v in await redis.hmget(index.k["fp"], prints[start:start + 500]):
            for u in (v.decode().split(",") if v else []):
                hits[u] += 1
    for usha, n in hits.most_common(3):
        meta = json.loads(await redis.hget(index.k["commits"], usha) or b"{}")
        if n >= 8 and meta.get("date", 0) > commit.commit_time:
            return True
    return False


# ------------------------------------------------------------------------------------------------ the run

async def main(args) -> int:
    redis_path, valkey_path = Path(args.redis), Path(args.valkey)
    if not (redis_path.exists() and valkey_path.exists()):
        print(f"provenance-eval: needs clones of redis and valkey ({redis_path}, {valkey_path}); skipped")
        return 0
    tmp = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="prov-eval-"))
    tmp.mkdir(parents=True, exist_ok=True)
    # Only the branches the evaluation reads (a snapshot may lack objects of refs nobody needs).
    for name, src, refs in (("redis.git", redis_path, ("unstable", "7.2")), ("valkey.git", valkey_path, ("unstable",))):
        if (tmp / name).exists():          # --workdir from an earlier run: its indexes are kept too
            continue
        subprocess.run(["git", "init", "-q", "--bare", str(tmp / name)], check=True)
        subprocess.run(["git", "-C", str(tmp / name), "fetch", "-q", str(src),
                        *[f"+refs/heads/{r}:refs/heads/{r}" for r in refs]], check=True)
    up = pygit2.Repository(str(tmp / "redis.git"))
    fork_parent = str(git.commit_at(up, str(up.revparse_single(LICENCE_CHANGE).id)).parents[0].id)
    server = EmbeddedValkey(tmp / "valkey")
    server.start()
    redis = connect(server.url)
    try:
        cfg = ProvConfig(upstream=str(tmp / "redis.git"), tainted=["unstable"], allowed=["7.2", fork_parent],
                         normalize=NORMALIZE, exclude=["deps/"], github="redis/redis")
        t = time.perf_counter()
        stats = await build_index(cfg, redis, tmp / "data", say=lambda m: None)
        index_s = time.perf_counter() - t
        down = pygit2.Repository(str(tmp / "valkey.git"))
        t = time.perf_counter()
        walked = await build_own(cfg, redis, down, ["unstable"])
        own_s = time.perf_counter() - t
        print(f"index: {stats['total']} forbidden upstream commits in {index_s:.1f} s; our own history: {walked} "
              f"commits in {own_s:.1f} s")
        tip = git.branch_tip(down, "unstable")
        index = Index(redis)
        counts = {k.decode(): json.loads(v) for k, v in (await redis.hgetall(index.k["counts"])).items()}
        # The population: forbidden commits that change code (CI workflows, docs and JSON command tables aside),
        # with enough of it to recognise (12 fingerprints).
        candidates = [s for s, (exact, _) in counts.items() if exact >= 12 and changes_code(up, s)]
        print(f"sampled from {len(candidates)} of {len(counts)} forbidden commits (the others change no code, or "
              f"too little to recognise)")
        sample = seeded(candidates, args.copies, "copies")
        variants = VARIANTS[:4] if args.quick else VARIANTS
        results: dict[str, list] = defaultdict(list)
        cases = {"copies": [], "negatives": []}
        t = time.perf_counter()
        for usha in sample:
            subject = json.loads(await redis.hget(index.k["commits"], usha))["subject"]
            for variant in variants:
                made = await asyncio.to_thread(make_copy, down, up, usha, tip, variant)
                if not made:
                    continue
                head = git.commit_at(down, made[-1])
                found = await check(cfg, redis, down, tip, head, tmp / "data", created_at=None, branches=["unstable"])
                caught = any(f.upstream_commit or f.signal == "licence-text" for f in found)   # any forbidden source
                results[variant].append(caught)
                cases["copies"].append({"upstream": usha, "variant": variant, "caught": caught, "subject": subject,
                                        "signals": sorted({f.signal for f in found})})
        copies_s = time.perf_counter() - t
        # Negatives: Valkey's own commits since the fork, each checked as a PR of its day.
        walker = down.walk(tip.id, pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(pygit2.Oid(hex=fork_parent))             # Valkey forked from Redis here
        own_commits = [c for c in walker if len(c.parents) == 1]
        kinds = {str(c.id): negative_kind(down, c, 13157) for c in own_commits}
        for c in own_commits:
            if kinds[str(c.id)] == "regular" and await later_copied_by_redis(redis, index, down, c, cfg):
                kinds[str(c.id)] = "valkey-first"
        hard = [c for c in own_commits if kinds[str(c.id)] != "regular"]
        regular = seeded([c for c in own_commits if kinds[str(c.id)] == "regular"],
                         args.negatives if args.negatives else len(own_commits), "negatives")
        negatives = hard + regular
        false: dict[str, list] = defaultdict(list)
        t = time.perf_counter()
        for c in negatives:
            found = await check(cfg, redis, down, c.parents[0], c, tmp / "data", created_at=c.commit_time,
                                branches=["unstable"])
            alarms = [f for f in found if f.signal != "not-checked"]
            kind = kinds[str(c.id)]
            false[kind].append(bool(alarms))
            cases["negatives"].append({"commit": str(c.id), "kind": kind, "alarm": bool(alarms),
                                       "subject": (c.message or "").splitlines()[0][:100],
                                       "signals": [f"{f.signal} <- {str(f.upstream_commit)[:10]}" for f in alarms][:3]})
        neg_s = time.perf_counter() - t
        (HERE / "provenance_eval_cases.json").write_text(json.dumps(
            {"redis": str(up.revparse_single("unstable").id), "valkey": str(tip.id), "licence_change": LICENCE_CHANGE,
             "copies": [{k: c[k] for k in ("upstream", "variant")} for c in cases["copies"]],
             "negatives": [{k: c[k] for k in ("commit", "kind")} for c in cases["negatives"]]}, indent=0))
        all_copies = [x for v in results.values() for x in v]
        all_neg = [x for v in false.values() for x in v]
        hard_neg = [x for k, v in false.items() if k != "regular" for x in v]
        print(f"copies: {sum(all_copies)}/{len(all_copies)} caught = {100 * sum(all_copies) / max(1, len(all_copies)):.1f}% "
              f"({len(sample)} forbidden commits × {len(variants)} disguises; {copies_s:.0f} s)")
        for v in variants:
            print(f"  {v:<13} {sum(results[v]):>3}/{len(results[v]):<3}")
        print(f"genuine: {sum(all_neg)}/{len(all_neg)} false alarms = {100 * sum(all_neg) / max(1, len(all_neg)):.2f}%; "
              f"hard ones {sum(hard_neg)}/{len(hard_neg)} = {100 * sum(hard_neg) / max(1, len(hard_neg)):.2f}% ({neg_s:.0f} s)")
        for k in sorted(false):
            print(f"  {k:<17} {sum(false[k]):>3}/{len(false[k]):<3}")
        for c in cases["copies"]:
            if not c["caught"]:
                print(f"  missed: {c['variant']:<13} {c['upstream'][:10]} {c['subject'][:70]} {c['signals']}")
        for c in cases["negatives"]:
            if c["alarm"]:
                print(f"  false alarm: {c['kind']:<15} {c['commit'][:10]} {c['subject'][:60]} {c['signals']}")
        return 0
    finally:
        await redis.aclose()
        server.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", default="/work/.mirror/redis+redis/repo")
    ap.add_argument("--valkey", default="/work/.mirror/valkey-io+valkey/repo")
    ap.add_argument("--copies", type=int, default=40)
    ap.add_argument("--negatives", type=int, default=0, help="regular negatives sampled (0: all)")
    ap.add_argument("--quick", action="store_true", help="four disguises only")
    ap.add_argument("--workdir", default="", help="keep clones and indexes here between runs")
    raise SystemExit(asyncio.run(main(ap.parse_args())))
