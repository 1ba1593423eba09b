"""The embedded Valkey keeps queued jobs across a restart (append-only file under BOT_DATA_DIR)."""

from __future__ import annotations

from saq import Queue

from core.store import EmbeddedValkey, resolve
from core.config import Env
from core.queue import JobRequest, make_queue, submit


async def test_queued_jobs_survive_a_restart(tmp_path):
    server = EmbeddedValkey(tmp_path / "valkey")
    url = server.start()
    port = server.port
    try:
        from core.store import connect
        from jobs import backport

        redis = connect(url)
        queue = make_queue(url)
        req = JobRequest(kind=backport.KIND, params=backport.BackportParams(repo="a/b", release="1.0", refs=("abcdef1",)),
                         summary="x", requester="U1", channel="C1")
        sub = await submit(queue, redis, req)
        assert sub.created
        await queue.disconnect()
        await redis.aclose()
    finally:
        server.stop()
    again = EmbeddedValkey(tmp_path / "valkey")
    url = again.start()
    try:
        assert again.port == port  # the same address when it is free
        queue = Queue.from_url(url, name="bot")
        job = await queue.job(sub.key)
        assert job is not None and job.status == "queued"
        assert await queue.count("queued") == 1
        await queue.disconnect()
    finally:
        again.stop()


def test_resolve_reuses_a_running_embedded_server(tmp_path):
    env = Env(data_dir=tmp_path)
    url, server = resolve(env)
    try:
        assert server is not None
        url2, server2 = resolve(env)
        assert url2 == url and server2 is None
    finally:
        server.stop()
    assert resolve(Env(redis_url="redis://elsewhere:6379/0")) == ("redis://elsewhere:6379/0", None)


def test_a_store_that_evicts_keys_stops_start_up_unless_accepted(tmp_path):
    """With `maxmemory-policy allkeys-lru` a queued job or its record can vanish: one line, exit 2; with
    `[queue] allow_eviction = true` a loud warning instead."""
    import redis as syncredis

    from tests.bot.test_config import run_bot

    server = EmbeddedValkey(tmp_path / "valkey", appendonly=False)
    url = server.start()
    try:
        syncredis.Redis.from_url(url).config_set("maxmemory-policy", "allkeys-lru")
        (tmp_path / "bot.toml").write_text('[[repos]]\ngithub = "a/b"\nclone_url = "/nonexistent"\n')
        env = {"REDIS_URL": url, "BOT_DATA_DIR": str(tmp_path / "data"), "SLACK_BOT_TOKEN": "xoxb-1",
               "SLACK_SIGNING_SECRET": "s3cret-s3cret", "PORT": "1"}
        result = run_bot(env, tmp_path)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "maxmemory-policy allkeys-lru" in lines[0] and "noeviction" in lines[0]
        from core.store import eviction_problem

        error, warning = eviction_problem(url, allow_eviction=True)
        assert error == "" and warning.startswith("WARNING:")
        syncredis.Redis.from_url(url).config_set("maxmemory-policy", "noeviction")
        assert eviction_problem(url) == ("", "")
    finally:
        server.stop()
