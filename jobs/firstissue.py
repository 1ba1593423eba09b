"""First issues, handed to named newcomers from a private pool kept in Redis (never as GitHub labels).

`Pool` is the bookkeeping: the pool of curated issues, who holds which (a claim is one HSETNX, so two
maintainers handing out at once never give the same issue twice) and the Slack → GitHub login links.
`run` is the hand-out job (newcomers only: their merged PRs are counted on GitHub; a mentor with spare capacity
is named, round robin), `follow_up` the periodic nudge-and-return on a clock that counts only the newcomer's
own activity (its clock passed in, so tests drive it), `pr_opened` tells the maintainer when the newcomer opens
a PR for their issue and asks the mentor's review, and `pr_merged` thanks them, frees the mentor and offers the
maintainer the next issue."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from core import homes, render
from core import payload as gh_payload
from core.github import GitHubError
from core.kinds import BadParams, Kind, Params
from core.queue import JobRequest, set_info
from jobs.runtime import JobFailed, JobRun, JobThread

DAY = 86400
LINKS = "bot:fi:links"


def periods(config, repo: str | None = None) -> tuple[float, float]:
    """`[firstissue]` (or the repo's): seconds of quiet before the nudge, and after it before the issue returns."""
    cfg = config.firstissue_for(config.repo(repo) if repo else None)
    return cfg.nudge_after_days * DAY, cfg.return_after_days * DAY


class Pool:
    def __init__(self, redis, repo: str):
        self.redis = redis
        self.repo = repo
        self.pool_key = f"bot:fi:pool:{repo}"
        self.hold_key = f"bot:fi:hold:{repo}"

    async def add(self, number: int, note: str, by: str, now: float) -> bool:
        entry = {"note": note, "by": by, "added": now}
        return bool(await self.redis.hsetnx(self.pool_key, str(number), json.dumps(entry)))

    async def remove(self, number: int) -> dict | None:
        """Take an issue out of the pool (and forget its hold). Returns the hold it had, if any."""
        hold = await self.hold(number)
        async with self.redis.pipeline(transaction=True) as pipe:
            removed, _ = await pipe.hdel(self.pool_key, str(number)).hdel(self.hold_key, str(number)).execute()
        return hold if removed else {"missing": True}

    async def entries(self) -> list[tuple[int, dict, dict | None]]:
        pool = await self.redis.hgetall(self.pool_key)
        holds = await self.redis.hgetall(self.hold_key)
        out = []
        for n, raw in pool.items():
            hold = holds.get(n)
            out.append((int(n), json.loads(raw), json.loads(hold) if hold else None))
        return sorted(out, key=lambda e: (e[1].get("added", 0), e[0]))

    async def hold(self, number: int) -> dict | None:
        raw = await self.redis.hget(self.hold_key, str(number))
        return json.loads(raw) if raw else None

    async def holds(self) -> dict[int, dict]:
        return {int(n): json.loads(v) for n, v in (await self.redis.hgetall(self.hold_key)).items()}

    async def claim(self, number: int, record: dict) -> bool:
        return bool(await self.redis.hsetnx(self.hold_key, str(number), json.dumps(record)))

    async def update_hold(self, number: int, record: dict) -> None:
        await self.redis.hset(self.hold_key, str(number), json.dumps(record))

    async def release(self, number: int) -> None:
        await self.redis.hdel(self.hold_key, str(number))


OWNERS = "bot:fi:login-owners"      # login (lower case) -> the one Slack user it is linked to
PROOFS = "bot:fi:proof:"             # + Slack user: the code they must show on GitHub, and for which login
PROOF_TTL_S = 3600


async def link(redis, user: str, login: str) -> None:
    """Link `user` to `login`, moving the login from whoever had it (one Slack user per login)."""
    previous = await linked_login(redis, user)
    owner = await login_owner(redis, login)
    async with redis.pipeline(transaction=True) as pipe:
        if previous and previous.lower() != login.lower():
            pipe.hdel(OWNERS, previous.lower())
        if owner and owner != user:
            pipe.hdel(LINKS, owner)
        await pipe.hset(LINKS, user, login).hset(OWNERS, login.lower(), user).execute()


async def login_owner(redis, login: str) -> str | None:
    raw = await redis.hget(OWNERS, login.lower())
    return raw.decode() if isinstance(raw, bytes) else raw


async def proof_code(redis, user: str, login: str) -> str:
    """The code `user` must put on GitHub as `login` (profile bio, or a public gist's description or file):
    the same code for an hour, a new one for another login."""
    raw = await redis.get(PROOFS + user)
    if raw:
        data = json.loads(raw)
        if data["login"].lower() == login.lower():
            return data["code"]
    code = f"maintainer-bot-verify-{secrets.token_hex(6)}"
    await redis.set(PROOFS + user, json.dumps({"login": login, "code": code}), ex=PROOF_TTL_S)
    return code


async def proven(redis, github, repo: str, user: str, login: str) -> bool:
    """Whether `login`'s GitHub profile bio or one of its public gists shows the code given to `user`."""
    raw = await redis.get(PROOFS + user)
    if not raw:
        return False
    data = json.loads(raw)
    if data["login"].lower() != login.lower():
        return False
    code = data["code"]
    profile = await github.user(repo, login)
    if code in str(profile.get("bio") or ""):
        return True
    for gist in await github.user_gists(repo, login):
        if code in str(gist.get("description") or "") or any(code in str(name) for name in gist.get("files") or {}):
            return True
    return False


async def linked_login(redis, user: str) -> str | None:
    raw = await redis.hget(LINKS, user)
    return raw.decode() if isinstance(raw, bytes) else raw


def build_notes(text: str, limit: int = 1500) -> str:
    """The build/test part of a CONTRIBUTING or AGENTS file: the first section whose heading says so."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#{1,4}\s.*\b(build|test|getting started|development|setup)", line, re.I):
            level = len(line) - len(line.lstrip("#"))
            body = [line]
            for nxt in lines[i + 1:]:
                if re.match(r"^#{1,%d}\s" % level, nxt):
                    break
                body.append(nxt)
            return render.clip("\n".join(body).strip(), limit)
    return ""


async def _how_to_build(job: JobRun, repo: str) -> str:
    gh = job.services.github
    for path in ("CONTRIBUTING.md", "AGENTS.md", "README.md"):
        try:
            text = await gh.file_text(repo, path)
        except GitHubError:
            continue
        if text:
            notes = build_notes(text)
            if notes:
                return f"*How to build and test* (from {render.lit(path)}):\n{render.inert(notes)}"
    return "*How to build and test*: see the repository's README."


async def run(job: JobRun) -> None:
    """Hand an issue from the pool to the named newcomer. Stages: pick (who, and which issue: claimed in the
    pool and assigned on GitHub) → tell (the newcomer's DM), each checkpointed, so a job resumed after a crash
    neither hands out a second issue nor sends a second DM."""
    gh = job.services.github
    if gh is None:
        raise JobFailed("handing out issues needs GitHub credentials (GITHUB_TOKEN or a GitHub App)")
    picked = await job.stage("pick", lambda: _pick(job), detail="picking an issue")
    await job.stage("tell", lambda: _tell(job, picked), detail="telling the newcomer")
    user, login = picked.get("user"), picked.get("login")
    outcome = picked["outcome"]
    if outcome == "no-link":
        await job.done(f"<@{user}> has no linked GitHub login, so nothing was assigned. I asked them in a DM to "
                       f"run `/firstissue link <@{user}> <github-login>`.", detail="waiting for a GitHub link")
    elif outcome == "holds":
        held = picked["number"]
        await job.done(f"<@{user}> already holds #{held}; one at a time. Use `/firstissue <@{user}> --another` "
                       "to hand out a second.", detail=f"already holds #{held}")
    elif outcome == "not-newcomer":
        await job.done(f"<@{user}> (GitHub `{login}`) has {picked['merged']} merged PRs in {job.params.repo}, more "
                       f"than `[firstissue] max_merged_prs` = {picked['limit']}: first issues are kept for "
                       "newcomers, so nothing was handed out.", detail="not a newcomer")
    elif outcome == "empty":
        await job.done("The pool has no open, unassigned issue right now. Add some with `/firstissue add <issue>`.",
                       detail="pool empty")
    else:
        number, title = picked["number"], picked["title"]
        nudge, _ = periods(job.config, job.params.repo)
        mentor = (f" Their mentor is <@{picked['mentor']}> (told by DM)." if picked.get("mentor")
                  else " No mentor has a free slot (`/firstissue mentors`).")
        await job.done(f":seedling: Handed #{number} ({render.inert(title)}) to <@{user}> (GitHub `{login}`), "
                       f"assigned on GitHub and sent by DM.{mentor} I will nudge them after {nudge / DAY:g} days "
                       "without activity of theirs and tell you when they open a PR.", detail=f"#{number} → <@{user}>")


async def _pick(job: JobRun) -> dict:
    p: FirstIssueParams = job.params
    repo, gh = p.repo, job.services.github
    user = p.user or await job.thread.chat.find_user(p.name)
    if not user:
        raise JobFailed(f"I cannot find @{p.name} in this workspace")
    login = await linked_login(job.redis, user)
    if not login:
        return {"outcome": "no-link", "user": user}
    pool = Pool(job.redis, repo)
    holds = await pool.holds()
    # This request's own claim, made by an attempt that then died (a later request with the same key is
    # another hand-out: the record's creation time tells them apart).
    claim = f"{job.key}@{(await job.thread.info()).get('created', '')}"
    mine = [n for n, h in holds.items() if h.get("claim") == claim]
    held = [n for n, h in holds.items() if h["user"] == user and n not in mine]
    if held and not p.another and not mine:
        return {"outcome": "holds", "user": user, "number": held[0]}
    limit = job.config.firstissue_for(job.config.repo(repo)).max_merged_prs
    if not mine:
        merged = await gh.merged_pulls_by(repo, login)
        if merged > limit:
            return {"outcome": "not-newcomer", "user": user, "login": login, "merged": merged, "limit": limit}
    now = job.services.clock()
    picked = None
    for number, entry, hold in await pool.entries():
        if hold is not None and number not in mine:
            continue
        record = {"user": user, "login": login, "by": job.request["requester"], "since": now, "key": job.key,
                  "claim": claim, "nudged": 0, "pr": 0}
        if number not in mine and not await pool.claim(number, record):
            continue                     # another hand-out took it a moment ago
        why = "" if number in mine else await _still_free(gh, repo, number)
        if why == "closed":
            await pool.remove(number)
            await job.say(f"#{number} was closed on GitHub; I took it out of the pool.", once=f"closed:{number}")
            continue
        if why:
            await pool.release(number)
            await job.say(f"Skipped #{number}: {why}.", once=f"skip:{number}")
            continue
        try:
            await gh.assign(repo, number, login)          # assigning the same login again changes nothing
        except GitHubError as exc:
            await pool.release(number)
            raise JobFailed(f"GitHub refused to assign #{number} to {login}: {exc}")
        picked = (number, entry)
        break
    if picked is None:
        return {"outcome": "empty", "user": user}
    number, entry = picked
    hold = await pool.hold(number) or {}
    mentor = hold.get("mentor") or await choose_mentor(job.redis, [r.github for r in job.config.repos], user)
    if mentor and hold.get("mentor") != mentor:
        hold["mentor"] = mentor
        await pool.update_hold(number, hold)
    await homes.mark_dirty(job.redis, user)          # their Home shows the issue they hold
    issue = await gh.issue(repo, number)
    return {"outcome": "picked", "user": user, "login": login, "number": number, "note": entry.get("note", ""),
            "title": issue.get("title", ""), "url": issue.get("html_url", ""), "mentor": mentor}


async def _tell(job: JobRun, picked: dict) -> dict:
    """The newcomer's DM, sent once even by a worker that picks the job up after another died mid-send."""
    user, repo, by = str(picked.get("user", "")), job.params.repo, job.request["requester"]
    chat = job.thread.chat
    if picked["outcome"] not in ("no-link", "picked") or not await job.thread.claim("dm"):
        return {}
    try:
        await _dm(job, chat, picked, user, repo, by)
    except Exception:
        await job.thread.unclaim("dm")
        raise
    mentor = picked.get("mentor")
    if mentor and await job.thread.claim("dm-mentor"):
        try:
            await chat.dm(mentor, f"Hi <@{mentor}>! You are mentoring <@{user}> on #{picked['number']} "
                                  f"(*{render.inert(picked['title'])}*) {picked['url']} in {repo}, handed out by "
                                  f"<@{by}>. I will ask for your review when their PR opens.")
        except Exception:
            await job.thread.unclaim("dm-mentor")
            raise
    return {}


async def _dm(job: JobRun, chat, picked: dict, user: str, repo: str, by: str) -> None:
    if picked["outcome"] == "no-link":
        await chat.dm(user, f"Hi <@{user}>! <@{by}> would like to hand you a first issue in {repo}. Please link "
                            f"your GitHub login first: `/firstissue link <@{user}> <your-login>`.")
    elif picked["outcome"] == "picked":
        note = f"\n*Note from <@{by}>*: {render.inert(picked['note'])}" if picked.get("note") else ""
        await chat.dm(user, f"Hi <@{user}>, welcome! <@{by}> picked a first issue for you: "
                            f"*{render.inert(picked['title'])}* {picked['url']} — it is assigned to "
                            f"you on GitHub ({picked['login']}).{note}\n\n{await _how_to_build(job, repo)}\n\n"
                            + (f"Your mentor is <@{picked['mentor']}>: ask them anything, and they will review "
                               "your PR. " if picked.get("mentor") else "")
                            + f"Questions? Ask <@{by}>, or reply in the project's channel.")


async def _still_free(gh, repo: str, number: int) -> str:
    """'' when the issue can be handed out, 'closed', or why not."""
    try:
        issue = await gh.issue(repo, number)
    except GitHubError as exc:
        if exc.status == 404:
            return "closed"
        raise
    if issue.get("state") != "open":
        return "closed"
    if issue.get("assignees"):
        return "someone is already assigned on GitHub"
    if await gh.linked_open_pulls(repo, number):
        return "an open pull request already references it"
    return ""


# --- mentors ------------------------------------------------------------------------------------------------
MENTORS = "bot:fi:mentors"          # Slack user -> {"capacity": n, "by": who added them}
MENTOR_TURN = "bot:fi:mentor-turn"  # round-robin counter


async def mentors(redis) -> dict[str, dict]:
    raw = await redis.hgetall(MENTORS)
    return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}


async def add_mentor(redis, user: str, capacity: int, by: str) -> None:
    await redis.hset(MENTORS, user, json.dumps({"capacity": capacity, "by": by}))


async def remove_mentor(redis, user: str) -> bool:
    return bool(await redis.hdel(MENTORS, user))


async def mentees(redis, repos) -> dict[str, list[tuple[str, int, str]]]:
    """Each mentor's current newcomers: (repo, issue, newcomer) — a slot is held exactly while the hold is."""
    out: dict[str, list[tuple[str, int, str]]] = {}
    for repo in repos:
        for number, hold in (await Pool(redis, repo).holds()).items():
            if hold.get("mentor"):
                out.setdefault(hold["mentor"], []).append((repo, number, hold["user"]))
    return out


async def choose_mentor(redis, repos, newcomer: str) -> str:
    """The next mentor in turn with a free slot ('' when none has one); never the newcomer themselves."""
    listed = await mentors(redis)
    names = sorted(u for u in listed if u != newcomer)
    if not names:
        return ""
    load = {m: len(v) for m, v in (await mentees(redis, repos)).items()}
    start = int(await redis.incr(MENTOR_TURN)) - 1
    for i in range(len(names)):
        m = names[(start + i) % len(names)]
        if load.get(m, 0) < int(listed[m].get("capacity", 1)):
            return m
    return ""


# --- the newcomer's clock -------------------------------------------------------------------------------------
def _when(text) -> float:
    if not isinstance(text, str) or len(text) > 40:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _login(obj) -> str:
    return str((obj or {}).get("login") or "").lower() if isinstance(obj, dict) else ""


async def last_activity(gh, repo: str, number: int, hold: dict) -> tuple[float, str]:
    """The newcomer's own latest activity (time, what): their comments on the issue, a PR of theirs that
    references it, commits, comments and review replies on their PR. Nobody else's, and not the bot's nudge."""
    login = str(hold.get("login", "")).lower()
    best: tuple[float, str] = (float(hold.get("since", 0)), "was handed the issue")

    def seen(when: float, what: str) -> None:
        nonlocal best
        if when > best[0]:
            best = (when, what)

    for e in await gh.timeline(repo, number):
        kind = e.get("event")
        if kind == "commented" and _login(e.get("user") or e.get("actor")) == login:
            seen(_when(e.get("created_at")), f"commented on #{number}")
        elif kind == "cross-referenced":
            source = (e.get("source") or {}).get("issue") or {}
            if _login(source.get("user")) == login:
                seen(_when(e.get("created_at")), f"referenced #{number} from #{source.get('number')}")
    pr = int(hold.get("pr") or 0)
    if pr:
        seen(float(hold.get("pr_at") or 0), f"opened PR #{pr}")
        for c in await gh.pull_commits(repo, pr):
            if _login(c.get("author")) == login or _login(c.get("committer")) == login:
                commit = c.get("commit") or {}
                seen(_when((commit.get("committer") or {}).get("date") or (commit.get("author") or {}).get("date")),
                     f"pushed a commit to PR #{pr}")
        for e in await gh.timeline(repo, pr):
            kind = e.get("event")
            who = _login(e.get("user") or e.get("actor"))
            if who != login:
                continue
            if kind == "commented":
                seen(_when(e.get("created_at")), f"commented on PR #{pr}")
            elif kind == "reviewed":
                seen(_when(e.get("submitted_at") or e.get("created_at")), f"replied to a review on PR #{pr}")
            elif kind in ("head_ref_force_pushed", "committed"):
                seen(_when(e.get("created_at")), f"pushed to PR #{pr}")
    return best


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


async def _pinned(gh, repo: str, number: int, label: str) -> bool:
    if not label or gh is None:
        return False
    issue = await gh.issue(repo, number)
    return any(str((lbl or {}).get("name", "")).lower() == label.lower() for lbl in issue.get("labels") or []
               if isinstance(lbl, dict))


async def follow_up(services, now: float) -> list[str]:
    """Nudge a holder once when their own activity has stopped for `nudge_after_days`; return the issue when
    they are still quiet `return_after_days` after the nudge (never a pinned one). Each says why. Returns what
    it did (for logs)."""
    chat = services.chats.get("slack") or services.chats.get("console")
    gh = services.github
    done = []
    for repo_cfg in services.config.repos:
        cfg = services.config.firstissue_for(repo_cfg)
        nudge_after, return_after = cfg.nudge_after_days * DAY, cfg.return_after_days * DAY
        pool = Pool(services.redis, repo_cfg.github)
        for number, hold in (await pool.holds()).items():
            thread = JobThread(chat, services.redis, hold["key"])
            if gh is not None:
                last, what = await last_activity(gh, repo_cfg.github, number, hold)
            else:
                last, what = float(hold.get("since", 0)), "was handed the issue"
            if (last, what) != (hold.get("last"), hold.get("last_what")):
                hold["last"], hold["last_what"] = last, what
                await pool.update_hold(number, hold)
            nudged = float(hold.get("nudged") or 0)
            quiet_days = (now - last) / DAY
            if nudged > last:                       # nudged, and nothing from them since
                if now - nudged < return_after:
                    continue
                if await _pinned(gh, repo_cfg.github, number, cfg.pin_label):
                    if not hold.get("pin_said"):
                        hold["pin_said"] = now
                        await pool.update_hold(number, hold)
                        await thread.reply(f"#{number} is labelled `{render.inert(cfg.pin_label)}`, so it stays "
                                           f"with <@{hold['user']}> although they have been quiet since "
                                           f"{_day(last)}.")
                    continue
                if gh is not None:
                    await gh.unassign(repo_cfg.github, number, hold["login"])
                await pool.release(number)
                await homes.mark_dirty(services.redis, hold["user"], hold.get("by", ""))
                await thread.reply(f"<@{hold['by']}> #{number} went back to the pool: <@{hold['user']}>'s last "
                                   f"activity was on {_day(last)} ({render.inert(what)}), I nudged them on "
                                   f"{_day(nudged)}, and nothing came in the {return_after / DAY:g} days since. "
                                   "Unassigned on GitHub." + (f" <@{hold['mentor']}>'s mentoring slot is free "
                                                              "again." if hold.get("mentor") else ""))
                done.append(f"returned {repo_cfg.github}#{number}")
            elif now - last >= nudge_after:
                await chat.dm(hold["user"], f"Hi <@{hold['user']}>! Just checking in on #{number} in "
                                            f"{repo_cfg.github}: the last I saw from you was on {_day(last)} (you "
                                            f"{render.inert(what)}), {quiet_days:.0f} days ago. Stuck, or busy? "
                                            f"Either is fine: ask <@{hold.get('mentor') or hold['by']}> for a hand, "
                                            f"or say so and it goes back to the pool.")
                hold["nudged"] = now
                await pool.update_hold(number, hold)
                await thread.reply(f"Nudged <@{hold['user']}> about #{number}: no activity of theirs for "
                                   f"{quiet_days:.0f} days (last: {render.inert(what)} on {_day(last)}).")
                done.append(f"nudged {repo_cfg.github}#{number}")
    return done


async def pr_opened(services, repo: str, pr: dict) -> bool:
    """A PR by a holder that references their issue: tell the maintainer in the hand-out thread."""
    user: dict = pr["user"] if isinstance(pr.get("user"), dict) else {}
    author = user.get("login") if isinstance(user.get("login"), str) else ""
    title = pr.get("title") if isinstance(pr.get("title"), str) else ""
    body = pr.get("body") if isinstance(pr.get("body"), str) else ""
    text = f"{title}\n{body}"
    if not author:
        return False
    refs = {int(n) for n in re.findall(r"(?<![\w/])#(\d{1,7})\b", text)}
    pool = Pool(services.redis, repo)
    chat = services.chats.get("slack") or services.chats.get("console")
    for number, hold in (await pool.holds()).items():
        if hold["login"].lower() == author.lower() and number in refs and not hold.get("pr"):
            hold["pr"] = pr["number"]
            hold["pr_at"] = services.clock()              # opening it is activity of theirs
            await pool.update_hold(number, hold)
            thread = JobThread(chat, services.redis, hold["key"])
            await thread.reply(
                f"<@{hold['by']}> :tada: <@{hold['user']}> opened PR #{pr['number']} for #{number}: "
                f"{render.inert(pr.get('html_url', ''))}", once=f"pr-opened:{pr['number']}")
            await _ask_mentor_review(services, thread, repo, hold, int(pr["number"]), author)
            return True
    return False


async def _ask_mentor_review(services, thread: JobThread, repo: str, hold: dict, pr: int, author: str) -> None:
    """The newcomer's mentor is requested as a reviewer of their PR (their linked GitHub login), once."""
    mentor = hold.get("mentor")
    if not mentor or services.github is None:
        return
    login = await linked_login(services.redis, mentor)
    if not login or login.lower() == author.lower():
        await thread.reply(f"<@{mentor}> is the mentor, but has no linked GitHub login to request a review from "
                           f"(`/firstissue link <@{mentor}> <login>`).", once=f"review-nolink:{pr}")
        return
    if not await thread.claim(f"review:{pr}"):
        return
    try:
        await services.github.request_reviewers(repo, pr, [login])
    except GitHubError as exc:
        if exc.status is not None:
            await thread.unclaim(f"review:{pr}")
        await thread.reply(f"Could not request <@{mentor}>'s review on #{pr}: {render.inert(str(exc))[:200]}",
                           once=f"review-fail:{pr}")
        return
    await thread.reply(f"Requested a review from <@{mentor}> (GitHub `{login}`), the mentor.", once=f"review-said:{pr}")


NEXT_ACTION = "firstissue_next"


async def pr_merged(services, repo: str, pr: dict) -> bool:
    """A holder's PR for their issue merged: thanks in the hand-out thread, the mentor told and freed, the
    issue out of the pool, and the maintainer who handed it out offered the next one (a button)."""
    author = _login(pr.get("user"))
    text = f"{pr.get('title') or ''}\n{pr.get('body') or ''}"
    refs = {int(n) for n in re.findall(r"(?<![\w/])#(\d{1,7})\b", text)}
    pool = Pool(services.redis, repo)
    chat = services.chats.get("slack") or services.chats.get("console")
    for number, hold in (await pool.holds()).items():
        if hold["login"].lower() != author or not (hold.get("pr") == pr["number"] or number in refs):
            continue
        thread = JobThread(chat, services.redis, hold["key"])
        user, by, mentor = hold["user"], hold["by"], hold.get("mentor", "")
        await thread.reply(f":tada: <@{user}>'s PR #{pr['number']} for #{number} is merged. Thank you, <@{user}>, "
                           "and welcome to the contributors!", once=f"merged:{pr['number']}")
        if mentor and await thread.claim(f"merged-mentor:{pr['number']}"):
            try:
                await chat.dm(mentor, f"<@{user}>'s PR #{pr['number']} for #{number} in {repo} is merged: thank "
                                      "you for mentoring them! Your slot is free again.")
            except Exception:
                await thread.unclaim(f"merged-mentor:{pr['number']}")
                raise
        offer = f"<@{by}> Hand <@{user}> their next issue?"
        await thread.reply(offer, [render.section(offer), {"type": "actions", "block_id": "firstissue_next",
                                                           "elements": [{"type": "button", "action_id": NEXT_ACTION,
                                                                         "style": "primary", "value": user,
                                                                         "text": {"type": "plain_text",
                                                                                  "text": "Hand out the next issue"}}]}],
                           once=f"offer:{pr['number']}")
        await pool.remove(number)          # done: out of the pool, and the hold (and the mentor's slot) with it
        await homes.mark_dirty(services.redis, user, by, mentor)
        return True
    return False


async def pr_opened_job(job) -> None:
    """The `pr-opened` job the webhook queues: a quiet job with no parent message of its own."""
    p: PrOpenedParams = job.params

    async def tell() -> bool:
        return await pr_opened(job.services, p.repo, {"number": p.number, "title": p.title, "body": p.body,
                                                      "html_url": p.html_url, "user": {"login": p.login}})

    async def merged() -> bool:
        return await pr_merged(job.services, p.repo, {"number": p.number, "title": p.title, "body": p.body,
                                                      "html_url": p.html_url, "user": {"login": p.login}})

    told = await job.stage("tell", merged if p.merged else tell)   # its replies are once-marked in the thread
    await set_info(job.redis, job.key, status="done", detail="told the hand-out thread" if told else "not a hold")


@dataclass(frozen=True)
class FirstIssueParams(Params):
    """The newcomer: a Slack user ID, or a name to look up when only `@name` was typed."""

    repo: str
    user: str = ""
    name: str = ""
    another: bool = False

    def check(self) -> None:
        if not (self.user or self.name):
            raise BadParams("FirstIssueParams: name the newcomer (user or name)")


@dataclass(frozen=True)
class PrOpenedParams(Params):
    """A PR just opened, as the webhook saw it (title and body clipped): is it a newcomer's, for their issue?"""

    repo: str
    number: int
    login: str
    title: str = ""
    body: str = ""
    html_url: str = ""
    merged: bool = False         # closed and merged (else: just opened)
    quiet: bool = True


KIND = Kind("firstissue", "fi", FirstIssueParams, run, command="firstissue",
            about="hand a curated first issue to a named newcomer")
PR_OPENED = Kind("pr-opened", "pro", PrOpenedParams, pr_opened_job,
                 about="tell the hand-out thread when a newcomer opens a PR for their issue")


async def on_pull_request(services, repo, payload: dict) -> list[JobRequest]:
    """A PR just opened: a quiet job checks whether it is a newcomer's, for their issue (no call from here)."""
    pr = gh_payload.obj(payload.get("pull_request"))
    pr_number = gh_payload.number(pr.get("number"))
    author = gh_payload.login(gh_payload.obj(pr.get("user")).get("login"))
    merged = payload.get("action") == "closed" and pr.get("merged") is True
    if (payload.get("action") != "opened" and not merged) or pr_number is None or not author:
        return []
    params = PrOpenedParams(repo=repo.github, number=pr_number, login=author, title=gh_payload.text(pr.get("title"))[:300],
                            body=gh_payload.text(pr.get("body"))[:5000], html_url=gh_payload.text(pr.get("html_url"))[:300],
                            merged=merged)
    return [JobRequest(kind=PR_OPENED, params=params, priority="low", dest="slack",
                       summary=f"PR #{pr_number} opened ({repo.github})", channel=services.config.slack.notify_channel)]
