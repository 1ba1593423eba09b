"""The audit log: every stage, command, test output, prompt, reply and retry of a job, kept `[queue]
audit_ttl_days` (30 by default).

One Redis list per job key (`bot:audit:<key>`), JSON entries, its expiry renewed on every write so the log
outlives the job by the configured number of days. Secrets are scrubbed before anything is written.

Links to a job's audit page (`GET /jobs/<id>?exp=&sig=`) are signed with HMAC-SHA256 under a random key kept in
the store (made once, shared by every process), so only links the bot gave out open a page, until they expire.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as secrets_mod
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


LINK_KEY = "bot:audit:link-key"


async def link_key(redis: Store) -> bytes:
    """The signing key of audit links: 32 random bytes made by the first process that needs it."""
    await redis.set(LINK_KEY, secrets_mod.token_hex(32), nx=True)
    raw = await redis.get(LINK_KEY)
    return raw if isinstance(raw, bytes) else str(raw).encode()


def link_signature(key: bytes, job: str, exp: int) -> str:
    return hmac.new(key, f"audit:{job}:{int(exp)}".encode(), hashlib.sha256).hexdigest()


def link_ok(key: bytes, job: str, exp_text: str, sig: str, now: float | None = None) -> bool:
    """A link's signature is ours and it has not expired (any malformed part: no)."""
    if not (exp_text.isascii() and exp_text.isdecimal() and len(exp_text) <= 12):
        return False
    if len(sig) != 64 or not sig.isascii():
        return False
    exp = int(exp_text)
    if exp < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(link_signature(key, job, exp).encode(), sig.encode())


async def signed_path(redis: Store, job: str, ttl_s: int, now: float | None = None) -> str:
    exp = int((time.time() if now is None else now) + ttl_s)
    return f"/jobs/{job}?exp={exp}&sig={link_signature(await link_key(redis), job, exp)}"
