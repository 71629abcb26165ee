"""The Redis the tests use: found through GATEWAY_TEST_REDIS_URL, cleaned by key prefix only.

Every test session writes under its own prefix (``gwtest:<random>:``) and deletes only that
prefix at the end (SCAN + DEL, never FLUSHDB: the database may hold someone else's data).
Without a Redis the tests that need one are skipped with the reason, unless
``GATEWAY_TEST_REQUIRE_REDIS=1`` (CI) turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import redis

from tests.support.procs import free_port

DEFAULT_URL = "redis://127.0.0.1:6379/15"


@dataclass
class RedisTarget:
    url: str
    prefix: str  # this test session's, ending in ":"
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def fresh_prefix(self, name: str = "t") -> str:
        """A prefix of its own for one test or fixture, inside the session's prefix."""
        return f"{self.prefix}{name}{next(self._counter)}:"

    def keys(self, prefix: str | None = None) -> list[str]:
        with redis.Redis.from_url(self.url) as client:
            return [key.decode() for key in client.scan_iter(match=f"{prefix or self.prefix}*")]

    def delete_prefix(self, prefix: str | None = None) -> int:
        removed = 0
        with redis.Redis.from_url(self.url) as client:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{prefix or self.prefix}*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    removed += client.delete(*batch)
                    batch = []
            if batch:
                removed += client.delete(*batch)
        return removed


def redis_url() -> str:
    return os.environ.get("GATEWAY_TEST_REDIS_URL", DEFAULT_URL)


def connect_or_skip() -> RedisTarget:
    """A reachable Redis for this session, or a skip (a failure when CI requires Redis)."""
    url = redis_url()
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            client.ping()
    except redis.RedisError as exc:
        reason = (f"no Redis answers at {url} ({type(exc).__name__}); set GATEWAY_TEST_REDIS_URL "
                  f"to one, or GATEWAY_TEST_REQUIRE_REDIS=1 to fail instead of skipping")
        if os.environ.get("GATEWAY_TEST_REQUIRE_REDIS") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return RedisTarget(url=url, prefix=f"gwtest:{secrets.token_hex(4)}:")


class RedisGate:
    """A TCP forwarder in front of the test Redis that a test can cut and restore.

    An outage without stopping a Redis that others may use: while cut, the gate's port is
    closed (connection refused) and every forwarded connection is torn down, as when Redis
    dies; restored, new connections reach Redis again with its data intact.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.database = parts.path.strip("/") or "0"
        self.port = free_port()
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.database}"

    def open(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port))
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
            server, self._server = self._server, None
        for sock in [*sockets, *([server] if server else [])]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # cut
            try:
                backend = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                client.close()
                continue
            backend.settimeout(None)
            with self._lock:
                self._sockets += [client, backend]
            for source, target in ((client, backend), (backend, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)
