"""The App Home tab: what each person sees when they open the bot in Slack.

For everyone: their own recent and running jobs, each linked to its thread. For a newcomer: the first issue they
hold and since when. For maintainers: the escalations waiting for a person (Retry, Dismiss, the thread), the jobs
in flight, and counts of the first-issue pool and of the last week's provenance and adversarial results (counts
only: an adversarial finding's details stay in the security channel). Every string from a job is escaped here.

`publish(services, user)` builds and publishes one person's view; `publisher(services)` is the workers' loop that
publishes the Homes marked out of date (core/homes.py), at most one publish per person every few seconds and a
few per second in all, within Slack's views.publish limits.
"""

from __future__ import annotations

import asyncio
import logging
import time

from core import homes, render
from core.queue import OPEN, job_info
from jobs import firstissue

log = logging.getLogger(__name__)

MAX_BLOCKS = 100            # Slack's limit for a Home view
SHOWN_JOBS = 10
SHOWN_ESCALATIONS = 10
SHOWN_IN_FLIGHT = 10
PER_USER_GAP_S = 3          # at most one publish per person in this many seconds
PER_TICK = 5                # publishes per worker per second


def thread_link(info: dict) -> str:
    channel, ts = info.get("channel", ""), info.get("thread_ts", "")
    if not channel or not ts or not channel.isalnum():
        return ""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def _job_line(key: str, info: dict) -> str:
    icon = render.STATUS_ICONS.get(info.get("status", ""), ":grey_question:")
    link = thread_link(info)
    what = render.summary_text(info.get("summary", key)[:150])
    where = f" · {render.link(link, 'thread')}" if link else ""
    detail = f": {render.inert(info.get('detail', ''))[:100]}" if info.get("detail") else ""
    return f"{icon} {what} · `{key}` — *{render.inert(info.get('status', '?'))}*{detail}{where}"


async def _infos(redis, keys) -> list[tuple[str, dict]]:
    out = []
    for k in keys:
        key = k.decode() if isinstance(k, bytes) else k
        info = await job_info(redis, key)
        if info:
            out.append((key, info))
    return out


async def build_view(services, user: str) -> dict:
    redis = services.redis
    maintainer = await services.auth.is_maintainer(user)
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": "Maintainer bot"}}]

    mine = await _infos(redis, await redis.zrevrange(homes.user_jobs_key(user), 0, SHOWN_JOBS - 1))
    running = [(k, i) for k, i in mine if i.get("status") in ("queued", "running")]
    lines = [_job_line(k, i) for k, i in mine]
    blocks.append(render.section("*Your jobs*" + (f" ({len(running)} running)" if running else "") + "\n"
                                 + ("\n".join(lines) if lines else "_None lately. Try `/backport help` or "
                                                                   "`/summarize help`._")))

    held = []
    for repo in services.config.repos:
        for number, entry, hold in await firstissue.Pool(redis, repo.github).entries():
            if hold and hold.get("user") == user:
                since = time.strftime("%Y-%m-%d", time.gmtime(float(hold.get("since") or 0)))
                title = render.inert(str(entry.get("title") or entry.get("note") or ""))[:120]
                url = f"https://github.com/{repo.github}/issues/{number}"
                state = "nudged, waiting for news" if hold.get("nudged") else "yours to work on"
                held.append(f"• {render.link(url, f'{repo.github}#{number}')} {title} — since {since}, {state}")
    if held:
        blocks.append(render.section("*Your first issue*\n" + "\n".join(held)))

    if maintainer:
        blocks += await _maintainer_blocks(services)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": time.strftime(
        "Updated %Y-%m-%d %H:%M UTC", time.gmtime())}]})
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}


async def _maintainer_blocks(services) -> list[dict]:
    redis = services.redis
    blocks: list[dict] = [{"type": "divider"}]
    waiting = []
    for key, info in await _infos(redis, await redis.zrevrange(homes.ESCALATED, 0, 50)):
        if info.get("status") == "needs a maintainer":
            waiting.append((key, info))
        else:
            await redis.zrem(homes.ESCALATED, key)       # retried or dismissed elsewhere
    blocks.append(render.section(f"*Waiting for a person* ({len(waiting)})" + ("" if waiting else "\n_Nothing._")))
    for key, info in waiting[:SHOWN_ESCALATIONS]:
        run = info.get("run", "1")
        blocks.append(render.section(_job_line(key, info)))
        elements = [{"type": "button", "action_id": "job_retry", "text": {"type": "plain_text", "text": "Retry"},
                     "style": "primary", "value": f"{key}:{run}"},
                    {"type": "button", "action_id": "job_dismiss", "text": {"type": "plain_text", "text": "Dismiss"},
                     "value": f"{key}:{run}"}]
        link = thread_link(info)
        if link:
            elements.append({"type": "button", "action_id": "home_open_thread", "url": link,
                             "text": {"type": "plain_text", "text": "Open thread"}})
        blocks.append({"type": "actions", "block_id": f"esc_{key}", "elements": elements})

    flying = await _infos(redis, await redis.zrevrange(OPEN, 0, 200))
    flying = [(k, i) for k, i in flying if i.get("status") in ("queued", "running")
              and not (i.get("params") or "").count('"quiet": true')]
    lines = [_job_line(k, i) for k, i in flying[:SHOWN_IN_FLIGHT]]
    more = f"\n…and {len(flying) - SHOWN_IN_FLIGHT} more" if len(flying) > SHOWN_IN_FLIGHT else ""
    blocks.append(render.section(f"*In flight* ({len(flying)})\n" + ("\n".join(lines) or "_Nothing._") + more))

    pool = held = 0
    for repo in services.config.repos:
        entries = await firstissue.Pool(redis, repo.github).entries()
        pool += len(entries)
        held += sum(1 for _, _, hold in entries if hold)
    counts = [f"First-issue pool: *{pool}* issue(s), {held} handed out"]
    week = time.time() - 7 * 86400
    for kind in homes.COUNTED_KINDS:
        infos = await _infos(redis, await redis.zrangebyscore(homes.kind_jobs_key(kind), week, "+inf"))
        if kind == "provenance":
            suspect = sum(1 for _, i in infos if "suspect" in i.get("detail", ""))
            counts.append(f"Provenance this week: *{len(infos)}* check(s), {suspect} suspect")
        else:
            found = sum(1 for _, i in infos if "finding" in i.get("detail", "") and not i.get("detail", "")
                        .startswith("0 finding"))
            counts.append(f"Adversarial runs this week: *{len(infos)}*, {found} with findings "
                          "(details only in the security channel)")
    blocks.append(render.section("\n".join(counts)))
    return blocks


async def publish(services, user: str) -> None:
    chat = services.chats.get("slack")
    if chat is None:
        return
    await chat.publish_home(user, await build_view(services, user))


async def opened(services, user: str) -> None:
    """The person opened their Home: note it (they will get updates) and publish now."""
    await services.redis.zadd(homes.SEEN, {user: time.time()})
    await services.redis.set(f"bot:home:gap:{user}", "1", ex=PER_USER_GAP_S)
    await publish(services, user)


async def publisher(services, tick_s: float = 1.0) -> None:
    """Publish the Homes marked out of date; one marked again within the gap waits for the next tick."""
    while True:
        await asyncio.sleep(tick_s)
        try:
            users = await services.redis.spop(homes.DIRTY, PER_TICK) or []
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("home publisher: %s", exc)
            continue
        for raw in users:
            user = raw.decode() if isinstance(raw, bytes) else raw
            try:
                if not await services.redis.set(f"bot:home:gap:{user}", "1", nx=True, ex=PER_USER_GAP_S):
                    await services.redis.sadd(homes.DIRTY, user)        # too soon: next time
                    continue
                await publish(services, user)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not publish the Home of %s: %s", user, exc)
