"""The audit log: every stage, command, test output, prompt, reply and retry of a job, kept `[queue]
audit_ttl_days` (30 by default).

One Redis list per job key (`bot:audit:<key>`), JSON entries, its expiry renewed on every write so the log
outlives the job by the configured number of days. Secrets are scrubbed before anything is written.
"""

from __future__ import annotations

import json
import time
from typing import Any

from core.store import Store

MAX_ENTRY = 64_000  # characters of text kept per entry; test logs longer than this keep their tail


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[secret]")
    return text


class Audit:
    def __init__(self, redis: Store, key: str, ttl_days: int = 30, secrets: list[str] | None = None):
        self.redis = redis
        self.name = f"bot:audit:{key}"
        self.ttl = ttl_days * 86400
        self.secrets = secrets or []

    async def write(self, stage: str, kind: str, text: str = "", **data: Any) -> None:
        text = scrub(str(text), self.secrets)
        if len(text) > MAX_ENTRY:
            text = "…[cut]…" + text[-MAX_ENTRY:]
        entry = {"t": round(time.time(), 3), "stage": stage, "kind": kind, "text": text}
        if data:
            entry["data"] = json.loads(scrub(json.dumps(data, default=str), self.secrets))
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.rpush(self.name, json.dumps(entry)).expire(self.name, self.ttl).execute()

    async def entries(self, start: int = 0, end: int = -1) -> list[dict]:
        return [json.loads(e) for e in await self.redis.lrange(self.name, start, end)]
