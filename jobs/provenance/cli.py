"""The command line: `python -m jobs.provenance index | check --repo PATH BASE..HEAD [--json] | selftest [--n N]
[--json]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys

import pygit2

from core import config as config_mod
from core.store import connect, resolve
from jobs import git
from jobs.provenance.index import Index, build_index, upstream_mirror
from jobs.provenance.score import build_own, check, reviewed_branches
from jobs.provenance.selftest import run_selftest
from jobs.provenance.signals import ProvenanceError, load_config, resolve_name


async def _cli(args) -> int:
    try:
        cfg_all = config_mod.load()
        cfg = load_config(cfg_all)
    except (config_mod.ConfigError, ProvenanceError) as exc:
        print(f"provenance: {exc}", file=sys.stderr)
        return 2
    url, server = resolve(cfg_all.env)
    redis = connect(url)
    try:
        if args.action == "index":
            await build_index(cfg, redis, cfg_all.env.data_dir, say=lambda m: print(m, file=sys.stderr))
            for repo_cfg in cfg_all.repos:        # our own history too: the first check has nothing left to do
                mirror = git.Mirror(cfg_all.env.data_dir, repo_cfg.github, repo_cfg.clone_url,
                                    cfg_all.env.github_token)
                try:
                    walked = await build_own(cfg, redis, await asyncio.to_thread(mirror.sync),
                                             reviewed_branches(repo_cfg))
                except git.GitError as exc:      # the upstream index stands; the first check will do this part
                    print(f"{repo_cfg.github}: our own history was not indexed ({exc})", file=sys.stderr)
                    continue
                print(f"{repo_cfg.github}: {walked} commit(s) of our own history fingerprinted", file=sys.stderr)
            return 0
        if args.action == "selftest":
            return await _selftest(args, cfg, cfg_all, redis)
        m = re.fullmatch(r"([\w./-]+)\.\.([\w./-]+)", args.range or "")
        if not m or not args.repo:
            print("provenance: usage: check --repo PATH BASE..HEAD [--json]", file=sys.stderr)
            return 2
        try:
            repo = pygit2.Repository(args.repo)
            base, head = resolve_name(repo, m.group(1)), resolve_name(repo, m.group(2))
            if await Index(redis).size() == 0:
                await build_index(cfg, redis, cfg_all.env.data_dir, say=lambda msg: print(msg, file=sys.stderr))
            findings = await check(cfg, redis, repo, base, head, cfg_all.env.data_dir, created_at=args.created)
        except (ProvenanceError, pygit2.GitError, git.GitError) as exc:
            print(f"provenance: {exc}", file=sys.stderr)
            return 2
        result = {"verdict": "suspect" if findings else "clean", "findings": [f.to_dict() for f in findings]}
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"{result['verdict']}: {len(findings)} finding(s)")
            for f in findings:
                print(f"  {f.commit[:10]} ← {str(f.upstream_commit)[:10]} {f.signal} {f.score:.2f} {', '.join(f.files)}")
        return 1 if findings else 0
    finally:
        await redis.aclose()
        if server:
            server.stop()


async def _selftest(args, cfg, cfg_all, redis) -> int:
    """Copies of forbidden commits on the default repo's default branch, and its recent genuine commits."""
    repo_cfg = cfg_all.default_repo
    mirror = git.Mirror(cfg_all.env.data_dir, repo_cfg.github, repo_cfg.clone_url, cfg_all.env.github_token)
    try:
        repo = await asyncio.to_thread(mirror.sync)
        await build_index(cfg, redis, cfg_all.env.data_dir, say=lambda m: print(m, file=sys.stderr))
        await build_own(cfg, redis, repo, reviewed_branches(repo_cfg))
        upstream = upstream_mirror(cfg, cfg_all.env.data_dir).repo()
        report = await run_selftest(cfg, redis, repo, repo_cfg.default_branch, upstream, cfg_all.env.data_dir,
                                    n=args.n, genuine=args.genuine,
                                    progress=lambda c: print(f"  {c.kind} {c.variant}: {c.commit[:10]} "
                                                             f"{'flagged' if c.flagged else 'clean'}", file=sys.stderr))
    except (ProvenanceError, git.GitError) as exc:
        print(f"provenance: {exc}", file=sys.stderr)
        return 2
    data = report.to_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"caught {data['caught']}/{data['copies']} copies, {data['false_alarms']}/{data['genuine']} false alarms")
        for c in report.cases:
            if not c.right:
                print(f"  {'missed' if c.kind == 'copy' else 'false alarm'}: {c.variant} {c.commit[:10]} {c.subject}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jobs.provenance",
                                 description="the provenance guard: index the forbidden upstream, check a range")
    sub = ap.add_subparsers(dest="action", required=True)
    sub.add_parser("index", help="build or refresh the upstream index")
    c = sub.add_parser("check", help="check BASE..HEAD of a local repository")
    c.add_argument("--repo", required=True)
    c.add_argument("range", metavar="BASE..HEAD")
    c.add_argument("--json", action="store_true")
    c.add_argument("--created", type=float, default=None,
                   help="the change's creation time (Unix seconds, server-side, e.g. the PR's created_at)")
    t = sub.add_parser("selftest", help="copies of forbidden commits must be caught, genuine commits stay clean")
    t.add_argument("--n", type=int, default=10, help="forbidden upstream commits sampled (each in 4 disguises)")
    t.add_argument("--genuine", type=int, default=20, help="recent genuine commits of the default branch")
    t.add_argument("--json", action="store_true")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    return asyncio.run(_cli(args))
