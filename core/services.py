"""Everything a command, webhook or job needs from the outside world, built once per process."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core import llm
from core.auth import Authorizer
from core.chat import Chat
from core.config import Config
from core.github import GitHubClient
from core.metrics import Metrics
from core.queue import BotQueue, make_queue
from core.quotas import Quotas
from core.store import Store, connect


@dataclass
class Services:
    config: Config
    redis: Store
    queue: BotQueue
    chats: dict[str, Chat]
    github: GitHubClient | None
    llm: object | None
    auth: Authorizer
    quotas: Quotas
    low_queue: BotQueue          # jobs nobody with a maintainer's say asked for: webhook checks, outsiders' commands
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], float] = time.time      # tests move time forward through this

    @classmethod
    def build(cls, config: Config, redis_url: str, chats: dict[str, Chat], queue_name: str = "bot") -> Services:
        chat = chats.get("slack") or chats.get("console")
        redis = connect(redis_url)
        quotas = Quotas(redis, config.quotas)
        github = GitHubClient.from_env(config.env)
        if github is not None:
            github.meter = lambda: quotas.spend("github", 1)  # noqa: E731      # every call counts for whoever asked
            github.secrets = config.env.secrets()
        client = llm.make_client(config.env)
        return cls(
            config=config,
            redis=redis,
            queue=make_queue(redis_url, queue_name, config.queue.sweep_s),
            chats=chats,
            github=github,
            llm=llm.Metered(client, quotas) if client is not None else None,
            auth=Authorizer(config.slack.maintainers, chat, console="slack" not in chats),
            quotas=quotas,
            low_queue=make_queue(redis_url, f"{queue_name}-low", config.queue.sweep_s),
        )

    @property
    def queues(self) -> dict[str, BotQueue]:
        """By priority: "normal" (maintainers' commands, writers' GitHub triggers) and "low"."""
        return {"normal": self.queue, "low": self.low_queue}

    def queue_named(self, name: str) -> BotQueue:
        return self.low_queue if name == self.low_queue.name else self.queue

    async def close(self) -> None:
        await self.low_queue.disconnect()
        await self.queue.disconnect()
        await self.redis.aclose()
        for chat in self.chats.values():
            if hasattr(chat, "close"):
                await chat.close()
