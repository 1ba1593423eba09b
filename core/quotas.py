"""Quotas: how much one person, and one channel, may ask of the bot, so that nobody's flood delays a
maintainer or spends the project's GitHub and model budgets.

Admission (at the command, before anything is queued): jobs a person (and a channel) has waiting or running,
and commands per hour, stricter for commands anyone may run when a non-maintainer runs them. An over-quota
request gets one line and nothing is queued. Spending (inside jobs): GitHub calls per person per hour and
model tokens per person per day, counted where the calls are made; past the cap the job stops with a line that
says so. Counters are plain Redis keys with expiries; the open-job sets heal themselves (entries older than a
day are dropped) in case a job's end was never recorded."""

from __future__ import annotations

import contextvars
import time
import uuid

from core.config import QuotaConfig

DAY = 86400

# Who a running job spends for: set by the worker for the job's task (and inherited by what it awaits).
spender: contextvars.ContextVar[str] = contextvars.ContextVar("spender", default="")


class OverBudget(Exception):
    """A person's GitHub or model budget for the period is spent; str() says which and until when."""


ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], 0, ARGV[2])
local jobs = tonumber(ARGV[3])
local open_user = redis.call('ZCARD', KEYS[1])
local open_channel = redis.call('ZCARD', KEYS[2])
local rate_user = redis.call('INCRBY', KEYS[3], jobs)
redis.call('EXPIRE', KEYS[3], 3700)
local rate_channel = redis.call('INCRBY', KEYS[4], jobs)
redis.call('EXPIRE', KEYS[4], 3700)
if open_user + jobs <= tonumber(ARGV[4]) and open_channel + jobs <= tonumber(ARGV[5])
        and rate_user <= tonumber(ARGV[6]) and rate_channel <= tonumber(ARGV[7]) then
    for i = 1, jobs do
        redis.call('ZADD', KEYS[1], ARGV[1], ARGV[8] .. ':' .. i)
        redis.call('ZADD', KEYS[2], ARGV[1], ARGV[8] .. ':' .. i)
    end
    redis.call('EXPIRE', KEYS[1], ARGV[9])
    redis.call('EXPIRE', KEYS[2], ARGV[9])
end
return {open_user, open_channel, rate_user, rate_channel}
"""


def new_token() -> str:
    return f"pending:{uuid.uuid4().hex}"


class Quotas:
    def __init__(self, redis, cfg: QuotaConfig):
        self.redis = redis
        self.cfg = cfg
        self._admit_script = None

    @staticmethod
    def _open(kind: str, who: str) -> str:
        return f"bot:quota:open:{kind}:{who}"

    async def admit(self, user: str, channel: str, jobs: int, *, anyone_command: bool, maintainer: bool,
                    now: float | None = None, token: str = "") -> str:
        """'' when `user` may queue `jobs` more jobs from `channel` now, else the one-line reason. Admitted
        places are held under `token` (see `new_token`) until `opened` swaps them for the jobs' keys."""
        now = time.time() if now is None else now
        hour = int(now // 3600)
        c = self.cfg
        if maintainer:
            return await self._admit_maintainer(user, jobs, now, hour)
        per_hour = c.per_user_per_hour if not anyone_command else c.anyone_per_user_per_hour
        # One atomic step: count, and when admitted, hold the places (placeholders `opened` swaps for the
        # jobs' keys), so a burst of concurrent commands can't all pass the same count.
        if self._admit_script is None:
            self._admit_script = self.redis.register_script(ADMIT)
        assert self._admit_script is not None
        token = token or new_token()
        open_user, open_channel, rate_user, rate_channel = await self._admit_script(
            keys=[self._open("user", user), self._open("channel", channel), f"bot:quota:rate:user:{user}:{hour}",
                  f"bot:quota:rate:channel:{channel}:{hour}"],
            args=[now, now - DAY, jobs, c.queued_per_user, c.queued_per_channel, per_hour, c.per_channel_per_hour,
                  token, DAY])
        minutes = int((3600 - now % 3600) // 60) + 1
        if open_user + jobs > c.queued_per_user:
            return (f"you already have {open_user} job(s) waiting or running (at most {c.queued_per_user}); "
                    "try again when one has finished")
        if open_channel + jobs > c.queued_per_channel:
            return (f"this channel already has {open_channel} job(s) waiting or running (at most "
                    f"{c.queued_per_channel}); try again shortly")
        if rate_user > per_hour:
            return f"you have asked for {per_hour} job(s) this hour already; try again in {minutes} minute(s)"
        if rate_channel > c.per_channel_per_hour:
            return (f"this channel has asked for {c.per_channel_per_hour} job(s) this hour already; try again in "
                    f"{minutes} minute(s)")
        return ""

    def counts(self, maintainer: bool) -> bool:
        """Whether a command by this person is counted at all (maintainers are not, unless given limits)."""
        return not maintainer or bool(self.cfg.queued_per_maintainer or self.cfg.maintainer_per_hour)

    async def _admit_maintainer(self, user: str, jobs: int, now: float, hour: int) -> str:
        c = self.cfg
        if not (c.queued_per_maintainer or c.maintainer_per_hour):
            return ""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self._open("user", user), 0, now - DAY).zcard(self._open("user", user))
            pipe.incrby(f"bot:quota:rate:user:{user}:{hour}", jobs).expire(f"bot:quota:rate:user:{user}:{hour}", 3700)
            _, open_user, rate_user, _ = await pipe.execute()
        if c.queued_per_maintainer and open_user + jobs > c.queued_per_maintainer:
            return (f"you already have {open_user} job(s) waiting or running (at most {c.queued_per_maintainer}); "
                    "try again when one has finished")
        if c.maintainer_per_hour and rate_user > c.maintainer_per_hour:
            return f"you have asked for {c.maintainer_per_hour} job(s) this hour already; try again later"
        return ""

    async def opened(self, user: str, channel: str, keys: list[str], now: float | None = None,
                     pending: str = "", held: int = 0) -> None:
        """Record the jobs really queued, in place of the `held` places `admit` took under `pending`."""
        now = time.time() if now is None else now
        places = [f"{pending}:{i}" for i in range(1, held + 1)] if pending else []
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind, who in (("user", user), ("channel", channel)):
                if places:
                    pipe.zrem(self._open(kind, who), *places)
                if keys:
                    pipe.zadd(self._open(kind, who), {k: now for k in keys}).expire(self._open(kind, who), DAY)
            await pipe.execute()

    async def closed(self, user: str, channel: str, key: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            await pipe.zrem(self._open("user", user), key).zrem(self._open("channel", channel), key).execute()

    async def spend(self, what: str, amount: int, who: str | None = None, now: float | None = None) -> None:
        """Count `amount` of `what` ("github" calls per hour, "llm" tokens per day) for `who` (default: the
        job's spender); raise OverBudget when the cap is passed. Jobs nobody asked for (GitHub-triggered
        checks) spend for "github" and share one budget."""
        who = spender.get() if who is None else who
        if not who:
            return
        now = time.time() if now is None else now
        if what == "github":
            window, cap, unit = 3600, self.cfg.github_calls_per_user_per_hour, "GitHub calls this hour"
        else:
            window, cap, unit = DAY, self.cfg.llm_tokens_per_user_per_day, "model tokens today"
        name = f"bot:quota:spend:{what}:{who}:{int(now // window)}"
        async with self.redis.pipeline(transaction=False) as pipe:
            used, _ = await pipe.incrby(name, amount).expire(name, window + 100).execute()
        if used > cap:
            raise OverBudget(f"the budget of {cap:,} {unit} for whoever asked ({who}) is spent; "
                             "the job stopped and can be retried later")

    async def check(self, what: str, who: str | None = None, now: float | None = None) -> None:
        """Raise OverBudget when the budget is already spent (before making a call)."""
        await self.spend(what, 0, who, now)
