"""The audit log outlives its job for the configured days and never holds a secret."""

from __future__ import annotations

from core.audit import Audit
from core.store import connect


async def test_entries_expire_after_thirty_days_and_are_scrubbed(redis_url):
    redis = connect(redis_url)
    try:
        audit = Audit(redis, "bp-0123456789", ttl_days=30, secrets=["xoxb-very-secret"])
        await audit.write("test", "output", "token was xoxb-very-secret here", env={"T": "xoxb-very-secret"})
        await audit.write("test", "output", "x" * 100_000)
        entries = await audit.entries()
        assert entries[0]["text"] == "token was [secret] here" and entries[0]["data"] == {"env": {"T": "[secret]"}}
        assert entries[1]["text"].startswith("…[cut]…") and len(entries[1]["text"]) < 70_000
        ttl = await redis.ttl("bot:audit:bp-0123456789")
        assert 29 * 86400 < ttl <= 30 * 86400
    finally:
        await redis.aclose()
