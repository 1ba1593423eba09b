"""The provenance guard on real repositories built here: an upstream that changed licence, a downstream fork,
and every disguise the issue names, plus the negatives that must stay clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest
import tomli_w

from core.store import connect
from jobs import provenance
from tests.gitrepo import RepoBuilder

ROOT = Path(__file__).resolve().parents[2]
NORMALIZE = {"Redis": "Valkey", "master": "primary", "RM_": "VM_", "REDISMODULE_": "VALKEYMODULE_"}


def upstream_style(name: str, n: int = 24) -> str:
    """Post-licence upstream code (template A)."""
    body = [f"int {name}(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {{"]
    for i in range(n):
        body.append(f"    long long {name}_v{i} = RM_GetSelectedDb(ctx) * {i + 3} + argc;")
        body.append(f"    if ({name}_v{i} > {i * 11 + 7}) return RM_ReplyWithError(ctx, \"ERR {name} {i} master\");")
    body.append("    return REDISMODULE_OK;")
    body.append("}")
    return "\n".join(body) + "\n"


def bsd_style(name: str, n: int = 20) -> str:
    """BSD-era code (template B)."""
    body = [f"void {name}(client *c) {{", "    robj *o;"]
    for i in range(n):
        body.append(f"    o = lookupKeyRead(c->db, c->argv[{i % 3 + 1}]);")
        body.append(f"    while (o && o->refcount < {i + 2}) incrRefCount(o);")
    body.append("}")
    return "\n".join(body) + "\n"


def own_style(name: str, n: int = 20) -> str:
    """The fork's own code (template C)."""
    body = [f"static size_t {name}(const char *buf, size_t len) {{", "    size_t acc = 0;"]
    for i in range(n):
        body.append(f"    for (size_t j{i} = 0; j{i} < len; j{i} += {i + 1}) acc ^= (size_t)buf[j{i}] << {i % 7};")
    body.append("    return acc;")
    body.append("}")
    return "\n".join(body) + "\n"


def rebrand(text: str) -> str:
    for old, new in (("REDISMODULE_", "VALKEYMODULE_"), ("RedisModule", "ValkeyModule"), ("RM_", "VM_"),
                     ("master", "primary")):
        text = text.replace(old, new)
    return text


def reformat(text: str) -> str:
    """Same tokens, different layout, comments added."""
    out = []
    for line in text.splitlines():
        out.append("\t" + line.strip().replace(" = ", "=").replace(", ", ",") + "  /* reformatted */")
    return "\n".join(out) + "\n"


def rename_identifiers(text: str, name: str) -> str:
    return text.replace(f"{name}_v", "tmp_q").replace(name, "renamedHandler").replace("argc", "nargs") \
        .replace("ctx", "kctx").replace("argv", "vec")


class World:
    """Upstream and downstream repositories, and a provenance config for them."""

    def __init__(self, tmp: Path):
        self.up = RepoBuilder(tmp / "upstream.git")
        bsd = {"src/server.c": bsd_style("processCommand"), "src/db.c": bsd_style("lookupKeyGeneric"),
               "deps/lib/vendored.c": bsd_style("vendoredThing")}
        self.up.commit("unstable", bsd, "Initial BSD code")
        self.bsd_fix = bsd_style("expireIfNeeded", 14)
        c2 = self.up.commit("unstable", {"src/expire.c": self.bsd_fix}, "Fix expire (BSD era)")
        self.up.branch("7.2", c2)
        self.last_bsd = c2
        self.up.commit("unstable", {"LICENSE": "Redis Source Available License 2.0 (RSALv2)\n"}, "Change licence")
        # The fork happens at the last BSD commit.
        self.down = RepoBuilder(tmp / "downstream.git")
        pygit2_copy(self.up.repo, self.down.repo, c2)
        self.down.branch("unstable", c2)
        # The downstream writes a fix first ...
        self.own_first = own_style("checksumFirst", 18)
        self.down_fix = self.down.commit("unstable", {"src/checksum.c": self.own_first}, "Add checksum helper")
        # ... then upstream, after its licence change, writes (and copies) things.
        self.u1_code = upstream_style("replicaCacheCmd")
        self.u1 = self.up.commit("unstable", {"src/replication.c": self.u1_code}, "Add replica cache command (#13001)")
        self.u3_code = upstream_style("moduleScanCmd", 40)
        self.u3 = self.up.commit("unstable", {"src/module.c": self.u3_code}, "Add module scan (#13002)")
        self.u4 = self.up.commit("unstable", {"src/checksum.c": self.own_first}, "Copy the checksum helper")
        self.u5 = self.up.commit("unstable", {"src/expire_copy.c": self.bsd_fix}, "Duplicate the BSD expire fix")
        self.cfg = provenance.ProvConfig(upstream=self.up.url, tainted=["unstable"], allowed=[c2, "7.2"],
                                         normalize=NORMALIZE, exclude=["deps/"], github="redis/redis")

    def pr(self, name: str, files: dict, message: str = "Downstream change", base: str | None = None,
           steps: list[tuple[dict, str]] | None = None) -> tuple[str, str]:
        base = base or self.down.tip("unstable")
        self.down.branch(name, base)
        for f, m in (steps or []):
            self.down.commit(name, f, m)
        self.down.commit(name, files, message)
        return base, self.down.tip(name)


def pygit2_copy(src: pygit2.Repository, dst: pygit2.Repository, tip: str) -> None:
    """Copy every object reachable from tip (the fork point) into dst."""
    for commit in src.walk(pygit2.Oid(hex=tip)):
        for oid in _objects(src, commit):
            obj = src[oid]
            dst.odb.write(obj.type, obj.read_raw())


def _objects(repo, commit):
    yield commit.id
    stack = [commit.tree]
    while stack:
        tree = stack.pop()
        yield tree.id
        for e in tree:
            if e.type_str == "tree":
                stack.append(repo[e.id])
            else:
                yield e.id


@pytest.fixture
async def world(tmp_path, redis_url):
    w = World(tmp_path)
    w.data = tmp_path / "data"
    w.redis = connect(redis_url)
    stats = await provenance.build_index(w.cfg, w.redis, w.data, say=lambda m: None)
    assert stats["new"] == 5          # licence change + the four later commits; nothing BSD
    yield w
    await w.redis.aclose()


async def verdict(w: World, base: str, head: str, created_at=None) -> list:
    repo = w.down.repo
    return await provenance.check(w.cfg, w.redis, repo, repo[pygit2.Oid(hex=base)], repo[pygit2.Oid(hex=head)],
                                  w.data, created_at=created_at)


def signals(findings) -> set[str]:
    return {f.signal for f in findings}


async def test_verbatim_cherry_pick(world):
    base, head = world.pr("t1", {"src/replication.c": world.u1_code}, "Add replica cache command")
    found = await verdict(world, base, head)
    assert found and found[0].upstream_commit == world.u1 and found[0].signal == "patch-id"


async def test_cherry_pick_onto_drifted_context(world):
    drift = bsd_style("processCommand").replace("incrRefCount(o);", "incrRefCount(o); /* fork */", 3)
    base, head = world.pr("t2", {"src/replication.c": "/* valkey */\n" + world.u1_code + "int tail;\n"},
                          steps=[({"src/server.c": drift}, "Fork drift")])
    found = await verdict(world, base, head)
    assert any(f.upstream_commit == world.u1 for f in found)


async def test_rebranded_copy(world):
    base, head = world.pr("t3", {"src/module.c": rebrand(world.u3_code)}, "Module scan for Valkey")
    found = await verdict(world, base, head)
    assert any(f.upstream_commit == world.u3 and f.signal in ("hunk", "winnowing") for f in found)


async def test_reformatted_copy(world):
    base, head = world.pr("t4", {"src/replication.c": reformat(world.u1_code)})
    found = await verdict(world, base, head)
    assert any(f.upstream_commit == world.u1 for f in found)


async def test_renamed_file(world):
    base, head = world.pr("t5", {"src/replica_cache.c": world.u1_code})
    found = await verdict(world, base, head)
    assert any(f.upstream_commit == world.u1 and "src/replica_cache.c" in f.files for f in found)


async def test_squashed_with_unrelated_work(world):
    base, head = world.pr("t6", {"src/replication.c": world.u1_code, "src/other.c": own_style("unrelatedWork", 60)},
                          "Big squashed change")
    found = await verdict(world, base, head)
    hit = [f for f in found if f.upstream_commit == world.u1]
    assert hit and hit[0].files == ["src/replication.c"]
    assert hit[0].spans and hit[0].spans[0]["upstream_file"] == "src/replication.c"


async def test_forty_percent_partial_copy(world):
    lines = world.u3_code.splitlines()
    part = "\n".join(lines[10:44]) + "\n"            # about 40% of the upstream commit's code
    mine = own_style("partialOwn", 30)
    base, head = world.pr("t7", {"src/mixed.c": mine + part})
    found = await verdict(world, base, head)
    hit = [f for f in found if f.upstream_commit == world.u3]
    assert hit and hit[0].signal == "winnowing" and 0.3 <= hit[0].score < 1.0


async def test_identifiers_renamed(world):
    base, head = world.pr("t8", {"src/module2.c": rename_identifiers(world.u3_code, "moduleScanCmd")})
    found = await verdict(world, base, head)
    assert any(f.upstream_commit == world.u3 and f.signal == "winnowing-renamed" for f in found)


async def test_the_forks_own_work_is_clean(world):
    base, head = world.pr("n1", {"src/newfeature.c": own_style("brandNewFeature", 40)})
    assert await verdict(world, base, head) == []


async def test_a_fix_the_downstream_wrote_first_is_clean(world):
    # Backporting our own earlier commit to a release branch: upstream copied it later; not evidence.
    world.down.branch("release", world.last_bsd)
    base, head = world.pr("n2", {"src/checksum.c": world.own_first}, "Backport checksum helper",
                          base=world.last_bsd)
    assert await verdict(world, base, head) == []


async def test_code_in_the_allowed_bsd_corpus_is_clean(world):
    base, head = world.pr("n3", {"src/expire_copy.c": world.bsd_fix}, "Reuse the expire fix")
    assert await verdict(world, base, head) == []


async def test_a_fake_date_line_changes_nothing(world):
    code = "/*\n * Date: 2018-01-01 (written before the licence change)\n */\n" + world.u1_code
    base, head = world.pr("n4", {"src/replication.c": code}, "Old code\n\nDate: Mon Jan 1 00:00:00 2018")
    assert any(f.upstream_commit == world.u1 for f in await verdict(world, base, head))


async def test_an_upstream_commit_after_the_pr_was_opened_is_not_evidence(world):
    base, head = world.pr("n5", {"src/replication.c": world.u1_code})
    meta = json.loads(await world.redis.hget("bot:prov:commits", world.u1))
    assert await verdict(world, base, head, created_at=meta["date"] - 1) == []


async def test_references_and_licence_text(world):
    base, head = world.pr("r1", {"src/notes.c": "/* Redis Source Available License 2.0 */\nint x;\n"},
                          "Port (cherry picked from commit %s)\n\nSee redis/redis#13002" % world.u3[:12])
    found = await verdict(world, base, head)
    assert {"cherry-pick-reference", "upstream-pr-reference", "licence-text"} <= signals(found)


async def test_the_index_refreshes_incrementally(world):
    world.up.commit("unstable", {"src/late.c": upstream_style("lateFeature")}, "Late feature (#13099)")
    stats = await provenance.build_index(world.cfg, world.redis, world.data, say=lambda m: None)
    assert stats == {"new": 1, "total": 6}


def test_command_line_exit_codes_and_json(tmp_path, redis_url):
    import asyncio

    w = World(tmp_path)
    base, head = w.pr("cli", {"src/replication.c": w.u1_code})
    clean_base, clean_head = w.pr("cli2", {"src/new.c": own_style("cliOwn", 30)})
    cfg = {"repos": [{"github": "acme/widget"}],
           "provenance": {"upstream": w.up.url, "tainted": ["unstable"], "allowed": ["7.2"],
                          "normalize": NORMALIZE, "exclude": ["deps/"]}}
    (tmp_path / "bot.toml").write_text(tomli_w.dumps(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GITHUB_", "ANTHROPIC_", "BOT_"))}
    env.update(PYTHONPATH=str(ROOT), REDIS_URL=redis_url, BOT_CONFIG=str(tmp_path / "bot.toml"),
               BOT_DATA_DIR=str(tmp_path / "data"))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "jobs.provenance", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    assert cli("index").returncode == 0
    suspect = cli("check", "--repo", w.down.url, f"{base}..{head}", "--json")
    assert suspect.returncode == 1, suspect.stderr
    data = json.loads(suspect.stdout)
    assert data["verdict"] == "suspect"
    assert set(data["findings"][0]) >= {"commit", "upstream_commit", "signal", "score", "files", "spans"}
    clean = cli("check", "--repo", w.down.url, f"{clean_base}..{clean_head}", "--json")
    assert clean.returncode == 0 and json.loads(clean.stdout) == {"verdict": "clean", "findings": []}
    assert cli("check", "--repo", w.down.url, "not a range").returncode == 2
    assert cli("check", "--repo", w.down.url, "nope..cli").returncode == 2
    assert cli("bogus").returncode == 2
    asyncio.run(_cleanup(redis_url))


async def _cleanup(url):
    r = connect(url)
    await r.flushdb()
    await r.aclose()


# The job, through Slack and webhooks -------------------------------------------------------------------------

def bot_config(w: World) -> dict:
    from tests.conftest import config_dict

    data = config_dict(w.down, default_branch="unstable")
    data["provenance"] = {"upstream": w.up.url, "tainted": ["unstable"], "allowed": ["7.2"],
                          "normalize": NORMALIZE, "exclude": ["deps/"], "github": "redis/redis"}
    return data


def open_pr(w: World, github, number: int, head: str, title: str) -> None:
    w.down.repo.references.create(f"refs/pull/{number}/head", pygit2.Oid(hex=head), force=True)
    github.add_pull("acme/widget", number, title=title, merge_commit_sha=None, merged=False, base="unstable",
                    head_sha=head)
    github.pulls["acme/widget"][number]["created_at"] = "2030-01-01T00:00:00Z"


async def test_provenance_command_reports_evidence_and_a_neutral_check_run(tmp_path, make_bot, github, slack,
                                                                          anthropic):
    w = World(tmp_path / "w")
    base, head = w.pr("feature", {"src/replication.c": rebrand(w.u1_code)}, "Replica cache")
    open_pr(w, github, 7, head, "Add a replica cache")
    anthropic.reply(lambda body: [{"type": "text", "text": json.dumps(
        {"assessment": "derived", "why": "same statements in the same order"})}])
    bot = await make_bot(bot_config(w), anthropic=anthropic)
    _, body = await bot.slash("/provenance", "PR#7")
    key = body["text"].split("`")[1]
    info = await bot.final(key, timeout=60)
    thread = bot.thread_of(info)
    assert "*Provenance: suspect*" in thread and f"upstream `{w.u1[:10]}`" in thread
    assert "ours `src/replication.c` L" in thread and "— upstream —" in thread
    assert "Claude's second look (advice only; it clears nothing): derived" in thread
    run = github.check_runs[-1]
    assert run["head_sha"] == head and run["conclusion"] == "neutral" and run["name"] == "provenance"


async def test_webhook_checks_every_pr_and_speaks_only_when_suspect(tmp_path, make_bot, github, slack):
    from tests.conftest import NOTIFY

    w = World(tmp_path / "w")
    _, clean_head = w.pr("clean", {"src/fresh.c": own_style("freshWork", 30)})
    _, bad_head = w.pr("bad", {"src/replication.c": w.u1_code})
    open_pr(w, github, 8, clean_head, "Fresh work")
    open_pr(w, github, 9, bad_head, "Replica cache")
    bot = await make_bot(bot_config(w))

    def payload(n, sha):
        return {"action": "opened", "repository": {"full_name": "acme/widget"},
                "pull_request": {"number": n, "head": {"sha": sha}, "user": {"login": "someone"}, "title": "x"}}

    status, body = await bot.webhook("pull_request", payload(8, clean_head), "p-8")
    key_clean = json.loads(body)["queued"][0]
    status, body = await bot.webhook("pull_request", payload(9, bad_head), "p-9")
    key_bad = json.loads(body)["queued"][0]
    info = await bot.final(key_bad, timeout=60)
    await bot.final(key_clean, timeout=60)
    assert [r["conclusion"] for r in sorted(github.check_runs, key=lambda r: r["head_sha"] != clean_head)] == \
        ["success", "neutral"]
    parents = slack.parents(NOTIFY)
    assert len(parents) == 1 and "#9" in parents[0]["text"]          # the clean PR made no noise
    assert "*Provenance: suspect*" in bot.thread_of(info)


async def test_our_own_history_is_walked_once_then_incrementally(world):
    base, head = world.pr("inc", {"src/fresh.c": own_style("freshOwn", 20)})
    await verdict(world, base, head)
    history = provenance.OwnHistory(world.redis, world.down.repo)
    assert await history.refresh(world.down.repo, set(), world.cfg) == 0      # nothing new since the check
    world.down.commit("unstable", {"src/more.c": own_style("moreOwn", 20)}, "More of our own work")
    assert await history.refresh(world.down.repo, set(), world.cfg) == 1      # only the new commit is read


async def test_a_synchronize_with_the_same_head_is_not_checked_again(tmp_path, make_bot, github, slack):
    w = World(tmp_path / "w")
    _, head = w.pr("clean", {"src/fresh.c": own_style("freshAgain", 30)})
    open_pr(w, github, 12, head, "Fresh")
    bot = await make_bot(bot_config(w))

    def payload(action, sha):
        return {"action": action, "repository": {"full_name": "acme/widget"},
                "pull_request": {"number": 12, "head": {"sha": sha}, "user": {"login": "someone"}, "title": "x"}}

    status, body = await bot.webhook("pull_request", payload("opened", head), "s-1")
    assert status == 200 and "prov-" in body
    await bot.final(json.loads(body)["queued"][0], timeout=60)
    status, body = await bot.webhook("pull_request", payload("synchronize", head), "s-2")
    assert status == 200 and "prov-" not in body                     # same head: nothing to check again
    status, body = await bot.webhook("pull_request", payload("synchronize", "c" * 40), "s-3")
    assert "prov-" in body                                             # a new head is checked


async def test_index_builds_our_own_history_so_the_first_check_does_no_more_than_the_next(world):
    w = world
    base, head = w.pr("first", {"src/replication.c": w.u1_code})
    own = await provenance.build_own(w.cfg, w.redis, w.down.repo, ["unstable"])
    assert own >= 2                              # the fork's own commits, fingerprinted by `index`
    runs = []
    for _ in range(2):
        stats: dict = {}
        repo = w.down.repo
        found = await provenance.check(w.cfg, w.redis, repo, repo[pygit2.Oid(hex=base)], repo[pygit2.Oid(hex=head)],
                                       w.data, stats=stats, branches=["unstable"])
        runs.append((stats["own_walked"], signals(found)))
    assert runs[0] == runs[1] and runs[0][0] == 0 and runs[0][1]


async def test_four_concurrent_first_checks_build_our_history_once(world):
    import asyncio

    w = world
    base, head = w.pr("together", {"src/replication.c": w.u1_code})
    repo = w.down.repo
    stats = [{} for _ in range(4)]
    results = await asyncio.gather(*(
        provenance.check(w.cfg, w.redis, repo, repo[pygit2.Oid(hex=base)], repo[pygit2.Oid(hex=head)], w.data,
                         stats=s, branches=["unstable"]) for s in stats))
    walked = sorted(s["own_walked"] for s in stats)
    total = len(list(repo.walk(repo.branches["unstable"].target)))
    assert walked[:3] == [0, 0, 0] and 0 < walked[3] <= total        # one of them did the work, once
    assert all(signals(r) == signals(results[0]) for r in results)


async def test_selftest_on_a_repo_with_a_planted_upstream(world):
    """Copies of the forbidden commits, in every disguise, are made on the downstream branch and caught; the
    downstream's own commits (one of which upstream later copied, one a BSD-era fix) stay clean."""
    from jobs.provenance.selftest import VARIANTS, run_selftest

    w = world
    await provenance.build_own(w.cfg, w.redis, w.down.repo, ["unstable"])
    report = await run_selftest(w.cfg, w.redis, w.down.repo, "unstable", w.up.repo, w.data, n=3, genuine=5)
    counts = report.counts()
    copies = [c for c in report.cases if c.kind == "copy"]
    # u1 and u3 are copied; u4 copied *our* helper, so copying it back changes nothing and is no case.
    assert {c.variant for c in copies} == set(VARIANTS) and {c.commit for c in copies} == {w.u1, w.u3}
    assert counts["caught"] >= counts["copies"] - 1, [c for c in copies if not c.flagged]
    assert counts["genuine"] == 2 and counts["false_alarms"] == 0, [c for c in report.cases if not c.right]
    assert w.down.repo.branches["unstable"].target == w.down.repo.revparse_single("unstable").id   # nothing moved
    assert set(report.to_dict()) >= {"copies", "caught", "missed", "genuine", "false_alarms", "by_variant", "cases"}


async def test_provenance_selftest_command_reports_in_the_thread(tmp_path, make_bot, github, slack):
    w = World(tmp_path / "w")
    bot = await make_bot(bot_config(w))
    _, body = await bot.slash("/provenance", "selftest 3")
    assert "Queued job `pst-" in body["text"], body
    info = await bot.final(body["text"].split("`")[1], timeout=120)
    thread = bot.thread_of(info)
    assert info["status"] == "done", thread
    assert "*Provenance self-test* on `unstable` of acme/widget: caught *8/8* copies (100%; verbatim 2/2" in thread
    assert "*0/2* false alarms on recent genuine commits" in thread
    _, body = await bot.slash("/provenance", "selftest lots")
    assert "selftest takes at most one number" in body["text"]


async def test_the_check_run_annotates_the_prs_lines_and_the_thread_links_it(tmp_path, make_bot, github, slack):
    w = World(tmp_path / "w")
    base, head = w.pr("feature", {"src/replication.c": rebrand(w.u1_code)}, "Replica cache")
    open_pr(w, github, 8, head, "Add a replica cache")
    bot = await make_bot(bot_config(w))
    _, body = await bot.slash("/provenance", "PR#8")
    info = await bot.final(body["text"].split("`")[1], timeout=60)
    run = [r for r in github.check_runs if r["name"] == "provenance"][-1]
    notes = run["output"]["annotations"]
    assert notes and all(n["path"] == "src/replication.c" and n["annotation_level"] == "warning" for n in notes)
    first = notes[0]
    assert 1 <= first["start_line"] <= first["end_line"] and w.u1[:12] in first["title"]
    assert "src/replication.c L" in first["message"] and "RM_" in first["raw_details"]     # the upstream excerpt
    assert f"<{run['html_url']}|the provenance check run>" in bot.thread_of(info)


async def test_annotations_beyond_githubs_fifty_are_listed_in_the_text():
    from core.github import MAX_ANNOTATIONS
    from jobs.provenance.job import span_annotations

    spans = [{"file": f"src/f{i}.c", "lines": [1, 5], "upstream_file": "src/x.c", "upstream_lines": [2, 6]}
             for i in range(70)]
    f = provenance.Finding("c" * 40, "u" * 40, "winnowing", 0.9, [], spans)
    cfg = provenance.ProvConfig(upstream="u", tainted=["x"], allowed=[], github="redis/redis")
    notes = span_annotations([f], cfg, None, None)
    assert len(notes) == 70 and MAX_ANNOTATIONS == 50
    assert notes[0]["title"] == "Matches redis/redis uuuuuuuuuuuu (winnowing, score 0.90)"


async def test_a_copy_spread_over_a_three_commit_series(world):
    lines = world.u3_code.splitlines(keepends=True)
    thirds = [lines[: len(lines) // 3], lines[len(lines) // 3: 2 * len(lines) // 3], lines[2 * len(lines) // 3:]]
    steps = [({"src/scan.c": "".join(sum(thirds[:k], []))}, f"Part {k}") for k in (1, 2)]
    base, head = world.pr("s1", {"src/scan.c": "".join(sum(thirds, []))}, "Part 3", steps=steps)
    found = await verdict(world, base, head)
    assert any(f.upstream_commit == world.u3 for f in found)


async def test_a_combined_disguise_rebranded_partial_and_squashed(world):
    lines = rebrand(world.u3_code).splitlines()
    part = "\n".join(lines[5:50]) + "\n"             # about half, rebranded
    base, head = world.pr("s2", {"src/mixed2.c": own_style("combinedOwn", 25) + part,
                                 "src/other2.c": own_style("otherWork", 40)}, "Refactor scanning")
    found = await verdict(world, base, head)
    assert any(f.upstream_commit == world.u3 for f in found)


async def test_a_licence_header_change_like_upstreams_is_clean(world):
    """Both sides change the same files' headers (our licence and copyright lines): comments are no evidence,
    even when the diff is equal to the upstream licence change's."""
    new_header = ("/*\n * Copyright (c) 2024-present, Valkey contributors.\n * All rights reserved.\n"
                  " * Licensed under the BSD 3-Clause licence, see COPYING for details.\n */\n")
    world.up.commit("unstable", {"src/db.c": new_header + bsd_style("lookupKeyGeneric")}, "Relicense headers")
    await provenance.build_index(world.cfg, world.redis, world.data, say=lambda m: None)
    base, head = world.pr("h1", {"src/db.c": new_header + bsd_style("lookupKeyGeneric")}, "Update headers")
    found = await verdict(world, base, head)
    assert [f for f in found if f.signal != "not-checked"] == []


async def test_a_large_refactor_of_bsd_era_code_is_clean(world):
    """Moving and reformatting code both sides inherited (the allowed corpus) matches nothing forbidden."""
    files = {f"src/split{i}.c": reformat(bsd_style(name)) for i, name in
             enumerate(("processCommand", "lookupKeyGeneric", "vendoredThing", "expireIfNeeded"))}
    base, head = world.pr("h2", files, "Split server.c into smaller files")
    assert [f for f in await verdict(world, base, head) if f.signal != "not-checked"] == []


async def test_in_a_sweeping_change_a_lone_identical_hunk_is_not_enough_but_a_copied_function_is(world):
    """A formatter run over the whole tree can make a small hunk equal to one of upstream's by chance; it
    takes real fingerprint evidence to flag a change that size. A copied function in it is still caught."""
    small = ("    if (c->flags & CLIENT_DENY_BLOCKING && server.lazy_expire_disabled) return 0;\n"
             "    long long deadline_ms = commandTimeSnapshot() + server.busy_reply_threshold;\n")
    server_c = bsd_style("processCommand")
    cut = server_c.index("    o = lookupKeyRead")
    world.up.commit("unstable", {"src/server.c": server_c[:cut] + small + server_c[cut:]}, "Tighten (#13100)")
    await provenance.build_index(world.cfg, world.redis, world.data, say=lambda m: None)
    big = {f"src/fmt{i}.c": own_style(f"formatted{i}", 900) for i in range(4)}
    base, head = world.pr("sw0", {"src/server.c": server_c[:cut] + small + server_c[cut:]}, "Same small hunk")
    alone = await verdict(world, base, head)
    assert alone and alone[0].signal in ("patch-id", "hunk"), alone                   # alone, it is evidence
    base, head = world.pr("sw1", {**big, "src/server.c": server_c[:cut] + small + server_c[cut:]},
                          "Run the formatter")
    assert [f for f in await verdict(world, base, head) if f.signal not in ("not-checked",)] == []
    base, head = world.pr("sw2", {**big, "src/module.c": world.u3_code}, "Run the formatter (and copy)")
    assert any(f.upstream_commit == world.u3 for f in await verdict(world, base, head))


async def test_a_copy_gathered_from_several_forbidden_commits_is_caught_as_a_whole(world):
    """Slices of five forbidden commits, none enough on its own (each a fifth of the change, a third of its
    commit), together all of the change: the forbidden set as a whole is the evidence."""
    import random

    def varied(name: str, seed: int, n: int = 60) -> list[str]:
        rng = random.Random(seed)
        ops = ["+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^", "&&", "||"]
        words = ["dict", "entry", "listpack", "quicklist", "stream", "slot", "expire", "field", "reply", "ctx"]
        lines = []
        for i in range(n):       # every line its own shape (operators), so no two commits look alike abstracted
            o = [rng.choice(ops) for _ in range(4)]
            lines.append(f"    {rng.choice(words)}{i} = {name}{rng.choice(words).title()}({rng.choice(words)} {o[0]} "
                         f"{rng.randint(2, 999)}) {o[1]} {rng.choice(words)} {o[2]} ({rng.choice(words)} {o[3]} "
                         f"{rng.randint(2, 999)});")
        return lines

    names = [f"seriesPart{i}" for i in range(5)]
    for i, name in enumerate(names):
        world.up.commit("unstable", {f"src/{name}.c": "\n".join(varied(name, i)) + "\n"}, f"Add {name} (#1310{i})")
    await provenance.build_index(world.cfg, world.redis, world.data, say=lambda m: None)
    slices = "".join("\n".join(varied(n, i)[20:41]) + "\n" for i, n in enumerate(names))
    base, head = world.pr("pool", {"src/gathered.c": slices}, "Gather helpers")
    found = await verdict(world, base, head)
    assert [f.signal for f in found] == ["winnowing-forbidden-set"], found
    assert "come from 5 forbidden commits" in found[0].detail
    base, head = world.pr("pool2", {"src/own.c": own_style("gatheredOwn", 60)}, "Our own helpers")
    assert await verdict(world, base, head) == []
