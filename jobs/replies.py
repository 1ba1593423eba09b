"""`gh-reply`: a comment on a GitHub PR that a webhook trigger decided on ("noted, I will backport this when it
merges", "the backport exists already"). A quiet job (no Slack thread), made once per mark ever, so a
redelivered or replayed event never comments twice."""

from __future__ import annotations

from dataclasses import dataclass

from core.kinds import Kind, Params
from core.queue import JobRequest, set_info

ONCE_TTL_S = 180 * 86400


@dataclass(frozen=True)
class ReplyParams(Params):
    repo: str
    pr: int
    body: str
    mark: str
    quiet: bool = True


def request_for(repo: str, number: int, body: str, mark: str):
    """The JobRequest for one reply (low priority: nobody waits on it in Slack)."""
    return JobRequest(kind=KIND, params=ReplyParams(repo=repo, pr=number, body=body, mark=mark), priority="low", summary=f"reply on #{number} ({repo})",
                      dest="slack")


async def run(job) -> None:
    """One stage, `reply`: the comment, made once per mark ever (a redelivered event's job finds it made)."""
    await job.stage("reply", lambda: _reply(job))
    await set_info(job.redis, job.key, job.config.queue.audit_ttl_days, status="done", detail="replied on GitHub")


async def _reply(job) -> dict:
    p: ReplyParams = job.params
    once = f"bot:gh-reply:{p.repo}#{p.pr}:{p.mark}"         # once ever, not once per run
    if job.services.github is not None and await job.redis.set(once, job.key, nx=True, ex=ONCE_TTL_S):
        try:
            await job.services.github.comment(p.repo, p.pr, p.body)
        except Exception:
            await job.redis.delete(once)
            raise
    return {}


KIND = Kind("gh-reply", "ghr", ReplyParams, run, about="a comment on a GitHub PR, decided by a webhook trigger")
