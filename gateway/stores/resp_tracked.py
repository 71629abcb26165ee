"""Session records kept in process and kept current by Redis: client-side caching.

Why (bench/RESULTS.md, "per-message re-check"): CONTRACT §7 re-checks the session on every
client message of a WebSocket. On the Redis store a GET per message costs ~50 µs of gateway CPU
when a message comes alone (a write, an epoll wake-up and a read), where the JWT and memory
store re-checks cost 0.5 and 5 µs. With Redis's client-side caching the re-check reads a local
copy, and Redis itself says when that copy is no longer true.

How it stays true (https://redis.io/docs/latest/develop/reference/client-side-caching/):

* One connection, ``HELLO 3`` + ``CLIENT TRACKING ON`` (default mode): Redis remembers every
  key this connection reads and, when any client changes or deletes it (a logout, a rotation,
  the ``last_seen`` touch, an expiry, a FLUSHDB), sends an ``invalidate`` push on this same
  connection. Replies and pushes share one ordered stream, so a copy is never older than the
  last push read.
* A reply is cached only if no invalidation was read while its GET was in flight (a
  generation counter): a push that arrives between the reply and the resumption of its caller
  would otherwise be applied before the value it invalidates is stored.
* A copy is trusted only while the connection is known to be alive: Redis was heard from
  within ``timeout`` seconds. The sweeper sends a PING each tick when the connection has been
  quiet, so a healthy link is always heard from; a link that stops answering (a partition, a
  stalled Redis) stops being trusted after ``timeout`` seconds and is then failed, and every
  lookup goes to Redis (and so to a 503 while Redis cannot answer).
* A lost or closed connection drops every copy: tracking belongs to the connection, and
  invalidations sent while it was down are gone.
* Only values are cached, never "absent" (an unknown cookie costs a GET every time, so a flood
  of made-up cookies cannot fill the cache), and at most ``MAX_ENTRIES`` (emptied when full).

What "logout counts at once" becomes: a logout deletes the record; Redis queues the
invalidation for every tracking replica before it answers the logout, so the push is on its way
to this replica before the user's browser even learns that the logout succeeded. A message the
user sends afterwards reaches this replica after the push (one network hop against three), and
the event loop reads the Redis socket, which became readable first, before it hands the message
to the re-check. What is not covered is a link that delivers the push late without failing;
that is bounded by the ``timeout`` trust window above.
"""

from __future__ import annotations

import asyncio
from typing import Final

from gateway.stores.resp import RespClient
from gateway.stores.resp_connection import _Connection
from gateway.stores.resp_wire import Endpoint, Push, encode

__all__ = ["MAX_ENTRIES", "TrackedClient"]

# ~400 bytes per session record and key: at most ~20 MB. More live sessions than this only
# costs misses (a GET) after each emptying, never a stale answer.
MAX_ENTRIES: Final = 50_000
_PING: Final = encode(b"PING")


class TrackedClient(RespClient):
    """One RESP3 connection with ``CLIENT TRACKING ON``, and the values it read; see above."""

    def __init__(self, url: str, *, timeout: float) -> None:
        # One connection: its pushes and replies are one ordered stream (module docstring).
        super().__init__(url, timeout=timeout, max_connections=1)
        self._cache: dict[bytes, bytes] = {}
        self._generation = 0  # +1 for every invalidation read and every connection dropped
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _handshake_commands(endpoint: Endpoint) -> list[bytes]:
        hello = [b"HELLO", b"3"]
        if endpoint.password:
            hello += [b"AUTH", (endpoint.username or "default").encode(),
                      endpoint.password.encode()]
        commands = [encode(*hello)]
        if endpoint.db:
            commands.append(encode(b"SELECT", b"%d" % endpoint.db))
        commands.append(encode(b"CLIENT", b"TRACKING", b"ON"))
        return commands

    async def get_cached(self, key: bytes) -> bytes | None:
        """GET ``key``, answered from the local copy while Redis vouches for it."""
        value = self._cache.get(key)
        if value is not None:
            conn = self._current
            if (conn is not None and not conn.closed
                    and asyncio.get_running_loop().time() - conn.heard <= self.timeout):
                self.hits += 1
                return value
        self.misses += 1
        generation = self._generation
        value = await self.get(key)
        if value is not None and generation == self._generation:
            cache = self._cache
            if len(cache) >= MAX_ENTRIES:
                cache.clear()
            cache[key] = value
        return value

    def cached(self) -> int:
        """How many values are held (for tests and metrics)."""
        return len(self._cache)

    # -- hooks of RespClient ---------------------------------------------------------------

    def _push(self, conn: _Connection, push: Push) -> None:
        if len(push) < 2 or push[0] != b"invalidate":
            return
        self._generation += 1
        keys = push[1]
        cache = self._cache
        if not isinstance(keys, list):  # null: FLUSHDB / FLUSHALL, everything this connection read
            cache.clear()
            return
        for key in keys:
            if isinstance(key, bytes):
                cache.pop(key, None)
            else:  # not what Redis sends: forget everything rather than guess
                cache.clear()

    def _conn_closing(self, conn: _Connection) -> None:
        super()._conn_closing(conn)
        # Tracking belonged to that connection: what it vouched for is no longer vouched for.
        self._cache.clear()
        self._generation += 1

    def _on_tick(self, now: float) -> None:
        conn = self._current
        if (self._cache and conn is not None and not conn.closed and not conn.pending
                and now - conn.heard >= self._tick):
            # No reply due: the sweeper fails the connection if this one does not come in time.
            conn.send(_PING)
