"""Everything a command, webhook or job needs from the outside world, built once per process."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import redis.asyncio as aioredis
from saq import Queue

from bot import llm
from bot.auth import Authorizer
from bot.chat import Chat
from bot.config import Config
from bot.github import GitHubClient
from bot.metrics import Metrics
from bot.store import connect
from jobs.queue import make_queue


@dataclass
class Services:
    config: Config
    redis: aioredis.Redis
    queue: Queue
    chats: dict[str, Chat]
    github: GitHubClient | None
    llm: object | None
    auth: Authorizer
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], float] = time.time      # tests move time forward through this

    @classmethod
    def build(cls, config: Config, redis_url: str, chats: dict[str, Chat], queue_name: str = "bot") -> "Services":
        chat = chats.get("slack") or chats.get("console")
        return cls(
            config=config,
            redis=connect(redis_url),
            queue=make_queue(redis_url, queue_name, config.queue.sweep_s),
            chats=chats,
            github=GitHubClient.from_env(config.env),
            llm=llm.make_client(config.env),
            auth=Authorizer(config.slack.maintainers, chat, console="slack" not in chats),
        )

    async def close(self) -> None:
        await self.queue.disconnect()
        await self.redis.aclose()
        for chat in self.chats.values():
            if hasattr(chat, "close"):
                await chat.close()
