"""What each release still needs, and where each wanted backport stands.

Wanted: merged PRs carrying a configured label (`backport {release}`, …), found with one GitHub search, and
items of a Projects (v2) board in the configured column with the release in the configured field, both read
through GraphQL. State per (PR, release), decided here from facts, newest fact first:

- done: the change is on the release branch — the branch contains the merge commit, or a commit on it says
  `(cherry picked from commit <sha>)` or has the same patch-id, and no later commit on the branch reverts it;
- PR open / needs a person / skipped / in flight: what the last backport job for it recorded (a job that
  stopped without recording counts by its final status);
- waiting: wanted, and none of the above.

Records live in the store (`bot:bpt:<repo>:<release>`, one JSON value per PR), written by the backport job and
the sweep; the branch is read from the job's git mirror, never from what a record claims.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import pygit2

from core import render
from core.config import BackportConfig, RepoConfig
from core.github import GitHubClient
from core.names import branch_problem
from core.queue import job_info
from jobs import git

log = logging.getLogger(__name__)

WAITING, IN_FLIGHT, PR_OPEN, NEEDS_PERSON, DONE, SKIPPED = (
    "waiting", "in flight", "PR open", "needs a person", "done", "skipped")
STATES = (WAITING, IN_FLIGHT, PR_OPEN, NEEDS_PERSON, DONE, SKIPPED)
ICONS = {WAITING: ":hourglass:", IN_FLIGHT: ":gear:", PR_OPEN: ":eyes:", NEEDS_PERSON: ":raising_hand:",
         DONE: ":white_check_mark:", SKIPPED: ":fast_forward:"}
RECORD_TTL_S = 365 * 86400
RELEASE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-")
SEARCH_PAGES = 10          # GitHub's search answers at most 1,000 results
BOARD_PAGES = 50           # 5,000 board items
SHOWN_ROWS = 40            # per release in Slack; the rest are counted


def release_of_label(patterns: Iterable[str], label: str) -> str | None:
    """The release a label names under one of the patterns (`backport {release}`), case-insensitively; None when
    it matches none. Plain string checks: no regex runs on the label."""
    low = label.lower()
    for pattern in patterns:
        prefix, _, suffix = pattern.lower().partition("{release}")
        if len(low) > len(prefix) + len(suffix) and low.startswith(prefix) and low.endswith(suffix):
            release = label[len(prefix):len(label) - len(suffix)]
            if len(release) <= 100 and set(release) <= RELEASE_CHARS and not branch_problem(release):
                return release
    return None


@dataclass
class Wanted:
    number: int
    title: str
    url: str
    merged_at: str
    merge_sha: str
    via: str                    # "label" or "board"
    item: str = ""              # the board item's node id
    labels: tuple[str, ...] = ()


@dataclass
class Board:
    """A Projects (v2) board as the bot needs it: its id, the status field and its options, and the items."""

    id: str
    status_field: str
    options: dict[str, str]     # option name -> option id
    items: list[dict] = field(default_factory=list)   # {"id", "number", "status", "release", "pr": Wanted|None}


SEARCH = """
query($q: String!, $after: String) {
  search(query: $q, type: ISSUE, first: 100, after: $after) {
    nodes { ... on PullRequest { number title url merged mergedAt mergeCommit { oid } repository { nameWithOwner }
            labels(first: 100) { nodes { name } } } }
    pageInfo { hasNextPage endCursor }
  }
}"""

BOARD = """
query($login: String!, $number: Int!, $after: String) {
  %s(login: $login) {
    projectV2(number: $number) {
      id
      fields(first: 50) { nodes {
        ... on ProjectV2SingleSelectField { id name options { id name } }
        ... on ProjectV2Field { id name } } }
      items(first: 100, after: $after) {
        nodes {
          id
          fieldValues(first: 30) { nodes {
            ... on ProjectV2ItemFieldSingleSelectValue { name field { ... on ProjectV2FieldCommon { name } } }
            ... on ProjectV2ItemFieldTextValue { text field { ... on ProjectV2FieldCommon { name } } } } }
          content { ... on PullRequest { number title url merged mergedAt mergeCommit { oid }
                                        repository { nameWithOwner } } }
        }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}"""

MOVE = """
mutation($project: ID!, $item: ID!, $field: ID!, $option: String!) {
  updateProjectV2ItemFieldValue(input: {projectId: $project, itemId: $item, fieldId: $field,
                                        value: {singleSelectOptionId: $option}}) { projectV2Item { id } }
}"""


def _pr(node: dict, via: str, repo: str) -> Wanted | None:
    if not isinstance(node, dict) or not node.get("merged") or not isinstance(node.get("number"), int):
        return None
    if str((node.get("repository") or {}).get("nameWithOwner", "")).lower() != repo.lower():
        return None
    labels = tuple(str(x.get("name", "")) for x in ((node.get("labels") or {}).get("nodes") or []) if x)
    return Wanted(number=node["number"], title=str(node.get("title", ""))[:300], url=str(node.get("url", "")),
                  merged_at=str(node.get("mergedAt") or ""), merge_sha=str((node.get("mergeCommit") or {}).get("oid")
                                                                          or ""), via=via, labels=labels)


def _quoted(label: str) -> str:
    return '"' + label.replace('"', "") + '"'


async def wanted_by_labels(gh: GitHubClient, repo: str, bp: BackportConfig,
                           releases: list[str]) -> dict[str, dict[int, Wanted]]:
    """Merged PRs labelled for each release: one search for every label of every release (GitHub ORs a
    comma-separated label list), each result sorted to its releases by its own labels."""
    out: dict[str, dict[int, Wanted]] = {r: {} for r in releases}
    labels = [p.replace("{release}", r) for r in releases for p in bp.labels]
    if not labels:
        return out
    query = f"repo:{repo} is:pr is:merged label:" + ",".join(_quoted(lbl) for lbl in labels)
    after = None
    for _ in range(SEARCH_PAGES):
        data = await gh.graphql(repo, SEARCH, {"q": query, "after": after})
        page = data["search"]
        for node in page.get("nodes") or []:
            pr = _pr(node, "label", repo)
            if pr is None:
                continue
            for name in pr.labels:
                release = release_of_label(bp.labels, name)
                if release in out:
                    out[release][pr.number] = pr
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    return out


async def board(gh: GitHubClient, repo: str, bp: BackportConfig) -> Board | None:
    """The configured board with every item (paginated), or None when none is configured."""
    if not bp.project:
        return None
    kind, login, _, number = bp.project.split("/")
    query = BOARD % ("organization" if kind == "orgs" else "user")
    result: Board | None = None
    after = None
    for _ in range(BOARD_PAGES):
        data = await gh.graphql(repo, query, {"login": login, "number": int(number), "after": after})
        project = (data.get("organization" if kind == "orgs" else "user") or {}).get("projectV2")
        if project is None:
            raise LookupError(f"the board {bp.project} does not exist or the bot can't read it")
        if result is None:
            status = next((f for f in project["fields"]["nodes"] if f and f.get("name") == bp.project_status_field
                           and "options" in f), None)
            if status is None:
                raise LookupError(f"the board {bp.project} has no single-select field "
                                  f"{bp.project_status_field!r}")
            result = Board(project["id"], status["id"], {o["name"]: o["id"] for o in status["options"]})
        for node in project["items"]["nodes"] or []:
            values = {}
            for v in (node.get("fieldValues") or {}).get("nodes") or []:
                if v and v.get("field"):
                    values[v["field"].get("name")] = v.get("name") if "name" in v else v.get("text")
            pr = _pr(node.get("content") or {}, "board", repo)
            if pr is not None:
                pr.item = node["id"]
            result.items.append({"id": node["id"], "status": values.get(bp.project_status_field),
                                 "release": str(values.get(bp.project_release_field) or ""), "pr": pr})
        page = project["items"]["pageInfo"]
        if not page["hasNextPage"]:
            break
        after = page["endCursor"]
    return result


async def move(gh: GitHubClient, repo: str, b: Board, item: str, column: str) -> bool:
    """Move a board item to `column`; False when the board has no such column."""
    option = b.options.get(column)
    if option is None:
        return False
    await gh.graphql(repo, MOVE, {"project": b.id, "item": item, "field": b.status_field, "option": option})
    return True


async def wanted(gh: GitHubClient | None, repo: RepoConfig, bp: BackportConfig,
                 releases: list[str]) -> tuple[dict[str, dict[int, Wanted]], Board | None]:
    """Everything wanted for `releases`, labels and board together (a PR on both counts once, as labelled)."""
    if gh is None:
        return {r: {} for r in releases}, None
    out = await wanted_by_labels(gh, repo.github, bp, releases)
    b = await board(gh, repo.github, bp)
    if b is not None:
        for it in b.items:
            if it["pr"] is not None and it["status"] == bp.project_column and it["release"] in out:
                out[it["release"]].setdefault(it["pr"].number, it["pr"])
    return out, b


# --- the branch: what is really on it ---------------------------------------------------------------------
@dataclass
class BranchLog:
    """The commits on a release branch that its default branch lacks, read once."""

    tip: str
    picked: dict[str, str]                   # source SHA named by "(cherry picked from commit …)" -> branch commit
    reverted: set[str]                       # commits reverted by a later commit that stands
    commits: list[str]                       # branch-only commits, newest first
    _patch_ids: dict[str, str] | None = None

    def patch_ids(self, repo: pygit2.Repository) -> dict[str, str]:
        if self._patch_ids is None:
            self._patch_ids = {}
            for sha in reversed(self.commits):
                if sha in self.reverted:
                    continue
                pid = patch_id(repo, git.commit_at(repo, sha))
                if pid:
                    self._patch_ids[pid] = sha
        return self._patch_ids


CHERRY = "(cherry picked from commit "
REVERTS = "This reverts commit "


def _named_sha(line: str, lead: str) -> str:
    rest = line[len(lead):].strip().rstrip(".)").strip()
    return rest.lower() if len(rest) == 40 and all(c in "0123456789abcdefABCDEF" for c in rest) else ""


def scan_branch(repo: pygit2.Repository, branch: str, default_branch: str, limit: int = 50_000) -> BranchLog | None:
    """Read the branch's own commits newest first: a revert that stands cancels the commit it names (so a
    revert of a revert restores it), and a standing cherry-pick line names the source it carries."""
    tip = git.branch_tip(repo, branch)
    if tip is None:
        return None
    walker = repo.walk(tip.id, pygit2.enums.SortMode.TOPOLOGICAL)
    base = git.branch_tip(repo, default_branch)
    if base is not None:
        merge_base = repo.merge_base(tip.id, base.id)
        if merge_base is not None:
            walker.hide(merge_base)
    picked: dict[str, str] = {}
    reverted: set[str] = set()
    commits: list[str] = []
    for n, commit in enumerate(walker):
        if n >= limit:
            break
        sha = str(commit.id)
        commits.append(sha)
        if sha in reverted:
            continue
        for line in (commit.message or "").splitlines():
            line = line.strip()
            if line.startswith(CHERRY):
                source = _named_sha(line, CHERRY)
                if source and source not in picked:
                    picked[source] = sha
            elif line.startswith(REVERTS):
                target = _named_sha(line, REVERTS)
                if target:
                    reverted.add(target)
    picked = {s: c for s, c in picked.items() if c not in reverted}
    return BranchLog(str(tip.id), picked, reverted, commits)


def patch_id(repo: pygit2.Repository, commit: pygit2.Commit) -> str:
    if len(commit.parents) != 1:
        return ""
    try:
        return str(repo.diff(commit.parents[0], commit).patchid)
    except (pygit2.GitError, ValueError):
        return ""


def landed(repo: pygit2.Repository, log: BranchLog, source: str) -> str:
    """How `source` is on the branch ('' when it is not): contained, cherry-picked, or the same patch."""
    if not source or source in log.reverted:
        return ""
    try:
        oid = pygit2.Oid(hex=source)
        commit = git.commit_at(repo, source)
    except (ValueError, KeyError, git.GitError):
        return ""
    tip = pygit2.Oid(hex=log.tip)
    if tip == oid or repo.descendant_of(tip, oid):
        return "contained"
    if source in log.picked:
        return log.picked[source]
    pid = patch_id(repo, commit)
    if pid and pid in log.patch_ids(repo):
        return log.patch_ids(repo)[pid]
    return ""


# --- records: what the jobs did ------------------------------------------------------------------------------
def records_key(repo: str, release: str) -> str:
    return f"bot:bpt:{repo.lower()}:{release}"


async def record(redis, repo: str, release: str, number: int, state: str, **fields) -> None:
    """What a job did for (PR, release): its state, job, the link to follow, the reason; merged over the last."""
    key = records_key(repo, release)
    raw = await redis.hget(key, str(number))
    old = json.loads(raw) if raw else {}
    old.update({k: v for k, v in fields.items() if v is not None}, state=state, at=time.time())
    await redis.hset(key, str(number), json.dumps(old))
    await redis.expire(key, RECORD_TTL_S)


async def records(redis, repo: str, release: str) -> dict[int, dict]:
    raw = await redis.hgetall(records_key(repo, release))
    out = {}
    for k, v in raw.items():
        k = k.decode() if isinstance(k, bytes) else k
        if k.isascii() and k.isdecimal():
            out[int(k)] = json.loads(v)
    return out


@dataclass
class Row:
    number: int
    title: str
    url: str
    merged_at: str
    state: str
    link: str = ""              # where to look: the backport PR, the thread, the branch commit
    reason: str = ""
    via: str = ""
    item: str = ""
    merge_sha: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


ALIVE_STATUSES = ("queued", "running")


async def state_of(redis, rec: dict | None) -> tuple[str, str, str]:
    """(state, link, reason) from a job's record; a job that ended without recording counts by its status."""
    if not rec:
        return WAITING, "", ""
    state, link, reason = rec.get("state", WAITING), rec.get("link", ""), rec.get("reason", "")
    if state == IN_FLIGHT and rec.get("job"):
        info = await job_info(redis, rec["job"])
        status = info.get("status", "")
        if status in ALIVE_STATUSES:
            return IN_FLIGHT, link, ""
        if status in ("failed", "needs a maintainer"):
            return NEEDS_PERSON, link, info.get("detail", "")
        if status == "dismissed":
            return WAITING, "", "the last attempt was dismissed"
        return WAITING, link, ""
    return state, link, reason


async def survey(redis, repo: pygit2.Repository, repo_cfg: RepoConfig, release: str, wanted_prs: dict[int, Wanted],
                 log: BranchLog | None) -> list[Row]:
    """Every PR wanted for `release` or recorded for it, with its state; newest merge first."""
    recs = await records(redis, repo_cfg.github, release)
    rows = []
    for number in sorted(set(wanted_prs) | set(recs)):
        w = wanted_prs.get(number)
        rec = recs.get(number, {})
        sha = (w.merge_sha if w else "") or rec.get("merge_sha", "")
        on = landed(repo, log, sha) if log is not None and sha else ""
        if on:
            state, link, reason = DONE, "" if on == "contained" else on, ""
        else:
            state, link, reason = await state_of(redis, rec)
            if state == DONE:        # a record says done, the branch says otherwise (reverted): wanted again
                state, link, reason = WAITING, "", "reverted on the branch"
        rows.append(Row(number=number, title=w.title if w else rec.get("title", ""), url=w.url if w else rec.get("url", ""),
                        merged_at=(w.merged_at if w else rec.get("merged_at", "")), state=state, link=link,
                        reason=reason, via=w.via if w else "asked", item=w.item if w else "", merge_sha=sha))
    rows.sort(key=lambda r: (r.merged_at, r.number), reverse=True)
    return rows


def summary_line(rows: list[Row]) -> str:
    counts = {s: 0 for s in STATES}
    for r in rows:
        counts[r.state] += 1
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing wanted"


def render_rows(release: str, branch: str, rows: list[Row], repo_url: str = "") -> str:
    """The status table of one release as Slack mrkdwn, every untrusted string escaped once here."""
    head = f"*{render.inert(release)}* (`{render.inert(branch)}`): {summary_line(rows)}"
    lines = [head]
    for r in rows[:SHOWN_ROWS]:
        pr = render.link(r.url, f"#{r.number}") if r.url else f"#{r.number}"
        where = ""
        if r.link.startswith(("https://", "http://")):
            where = " · " + render.link(r.link, "PR" if r.state == PR_OPEN else "thread")
        elif r.link and r.state == DONE:
            where = f" · `{r.link[:10]}`"
        reason = f" — {render.inert(r.reason)[:200]}" if r.reason else ""
        lines.append(f"{ICONS[r.state]} {pr} {render.inert(r.title)[:120]} — *{r.state}*{where}{reason}")
    if len(rows) > SHOWN_ROWS:
        lines.append(f"…and {len(rows) - SHOWN_ROWS} older")
    return "\n".join(lines)
