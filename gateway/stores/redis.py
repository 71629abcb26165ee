"""The Redis Store: sessions, OTP state, counters and links shared by every replica.

Keys: every key the gateway names gets ``prefix`` (default ``gw:``) in front, so the gateway
can share a Redis database with other applications (or test runs), and an operator can find
its data with ``SCAN MATCH gw:*`` without touching anything else.

Expiry is Redis's own (``PX``, in milliseconds, so fractional seconds survive): a record
disappears on every replica at the same instant, and no gateway process has to sweep. Values go
in and come out as bytes (``decode_responses`` stays off); set members are ids and are decoded.

Every call is a round trip, so a logout or a rotation on one replica is seen by the very next
request on any other. A session lookup costs one GET (well under a millisecond on a local
network), which is cheap next to the forward itself. The one exception is ``get_cached``, the
per-message re-check of a WebSocket (CONTRACT §7): it reads a local copy that Redis keeps
current with invalidation messages (:mod:`gateway.stores.resp_tracked`, unless
``websocket_cache`` is off), because there a GET per message would cost ten times the rest of
the re-check.

Two clients: ``get`` — the session lookup, on the path of every request that carries a cookie
— goes through the lean pipelined client of :mod:`gateway.stores.resp`; every other operation
through redis-py. Measured on the session-cookie benchmark (bench/RESULTS.md), redis-py cost
~68 µs of CPU per GET (pool checkout under ``asyncio.timeout`` and a Condition, command
packing, a read timeout per reply) plus ~25 µs of garbage collection for its allocations:
about a third of the whole request. The lean client does the same GET for ~15 µs of CPU one
at a time, system calls included, and ~3-5 µs each when 64 run at once, because concurrent GETs
share one write and one read (``bench/micro_redis_get.py``). Extending it to scripts, sets and
scans would buy nothing: they are off the hot path. Both clients read the same URL (host,
port, database, user name and password, as redis-py parses it); a URL the lean client does not
handle (``rediss://`` TLS, query options) keeps ``get`` on redis-py too. Like the redis-py
pool, the lean client retries a GET once, at once, when Redis closed the connection under it
(a GET is idempotent); unlike it, never after a timeout, which would only delay the 503.

Atomicity, operation by operation (the two the OTP rules rely on are ``incr`` and ``take``):

* ``add`` is ``SET NX PX`` and ``take`` is ``GETDEL`` (Redis ≥ 6.2): single commands, and
  Redis runs one command at a time, so of concurrent callers exactly one wins.
* ``incr`` must count and, only when it creates the counter, set its expiry. Sent as two
  commands, a crash or a lost connection between them would leave a counter without expiry: a
  permanent lock-out. It is a Lua script (``_INCR``), which Redis runs as one command. A
  MULTI/EXEC transaction of ``SET key 0 NX PX ttl`` + ``INCR key`` would give the same
  guarantee; the script is preferred because it is one command on the wire (EVALSHA, cached by
  Redis; redis-py sends the source again after a restart flushed the cache) where the
  transaction is four plus a pipeline object per call, on the path of every OTP send and
  verify. WATCH-based optimistic locking is not used: under the contention the attempt limit
  exists for (a hundred parallel guesses on one counter) it would retry over and over.

Errors: every failure of either client — refused or lost connection, timeout, an error reply
such as ``READONLY`` or ``OOM`` — is translated in one place (:meth:`RedisStore._failures`) into
:class:`gateway.errors.StoreUnavailable`, which the gateway answers with 503: a store it cannot
read never counts as "no session" or "no counter" (that would fail open). Transitions are
logged once (down, then back), with host, port and database only: the URL's password never
reaches a log line.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from gateway.errors import StoreUnavailable
from gateway.stores.base import check_ttl, check_value
from gateway.stores.resp import RespClient
from gateway.stores.resp_tracked import TrackedClient
from gateway.stores.resp_wire import ReplyError, UnsupportedURL

log = logging.getLogger("gateway.store")

DEFAULT_PREFIX = "gw:"
DEFAULT_TIMEOUT = 0.5
# Enough for a busy worker (a store call holds a connection for well under a millisecond);
# when all are busy a caller waits up to the timeout for one, then gets StoreUnavailable.
MAX_CONNECTIONS = 64

# Counts, and sets the expiry only when this call created the counter (INCR returned 1); an
# existing counter keeps its window, as the Store contract asks.
_INCR = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
"""


def describe_url(url: str) -> str:
    """``scheme://host:port/db`` — the URL without user name, password or options, for logs."""
    parts = urlsplit(url)
    database = parts.path.strip("/") or "0"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{port}/{database}"


def _bytes(value: bytes | str | None) -> bytes | None:
    # decode_responses is off, so replies are bytes; the client's types also allow str.
    return value.encode("utf-8") if isinstance(value, str) else value


def _millis(ttl: float) -> int:
    # At least 1 ms: a positive ttl that rounds to 0 would be refused by Redis.
    return max(1, round(ttl * 1000))


class RedisStore:
    """A Store on a Redis server; see the module docstring for its guarantees."""

    def __init__(
        self, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS, websocket_cache: bool = True,
    ) -> None:
        self.prefix = prefix
        self.where = describe_url(url)
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,  # waiting for a free connection
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One immediate retry covers a pooled connection that Redis closed while idle; more
            # would only make a client wait longer for the 503 when Redis is really down. A
            # retry after a timeout may repeat a command that did run: for ``incr`` that counts
            # one try too many, for ``add``/``take`` it reports "taken" — both refuse, never
            # grant, so the retry cannot weaken a limit.
            retry=Retry(NoBackoff(), 1),
        )
        # from_pool: the client owns the pool, so aclose() disconnects every connection.
        self._redis: Redis = Redis.from_pool(pool)
        self._incr = self._redis.register_script(_INCR)
        # The session GET's own client (module docstring); None when the URL needs redis-py.
        self._lean: RespClient | None
        # get_cached's client (module docstring); None: get_cached is a plain get.
        self._tracked: TrackedClient | None = None
        try:
            self._lean = RespClient(url, timeout=timeout)
            if websocket_cache:
                self._tracked = TrackedClient(url, timeout=timeout)
        except UnsupportedURL:
            self._lean = None
        self._down = False

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """Translate every client failure into StoreUnavailable (the one place that does)."""
        try:
            yield
        except ResponseError as exc:
            if "not an integer" in str(exc):
                # A caller bug, not an outage: the memory store raises the same ValueError.
                raise ValueError("incr on a value that is not an integer") from None
            self._report_down(exc)
            raise StoreUnavailable(reason="store_error") from None
        except ReplyError as exc:  # the lean client's error reply (WRONGTYPE, LOADING, …)
            self._report_down(exc)
            raise StoreUnavailable(reason="store_error") from None
        except (RedisError, OSError) as exc:
            # OSError covers socket errors redis-py does not wrap, TimeoutError, and every
            # link failure of the lean client (ConnectionError, TimeoutError).
            self._report_down(exc)
            raise StoreUnavailable(reason="store_unreachable") from None
        if self._down:
            self._report_up()

    def _report_up(self) -> None:
        self._down = False
        log.warning("session store reachable again", extra={"event": {"store": self.where}})

    def _report_down(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            # The exception type only: a message could quote the URL the client was given.
            event = {"store": self.where, "reason": type(exc).__name__}
            log.error("session store unreachable", extra={"event": event})

    async def get(self, key: str) -> bytes | None:
        lean = self._lean
        if lean is None:
            with self._failures():
                value = await self._redis.get(self.prefix + key)
            return _bytes(value)
        return await self._translated(lean.get((self.prefix + key).encode()))

    @property
    def websocket_cache(self) -> TrackedClient | None:
        """The client holding the WebSocket re-check's session copy; None when there is none."""
        return self._tracked

    async def get_cached(self, key: str) -> bytes | None:
        tracked = self._tracked
        if tracked is None:
            return await self.get(key)
        return await self._translated(tracked.get_cached((self.prefix + key).encode()))

    async def _translated(self, reply: Awaitable[bytes | None]) -> bytes | None:
        """A lean client's reply with ``_failures``' translation, without entering a context
        manager on the way in (~1 µs): on the path of every request with a session cookie."""
        try:
            found = await reply
        except Exception:
            with self._failures():
                raise
        if self._down:
            self._report_up()
        return found

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        check_value(value)
        check_ttl(ttl)
        with self._failures():
            # A plain SET also drops an earlier expiry, which is what ttl=None means.
            await self._redis.set(self.prefix + key, value,
                                  px=None if ttl is None else _millis(ttl))

    async def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        check_value(value)
        check_ttl(ttl)
        with self._failures():
            stored = await self._redis.set(self.prefix + key, value, nx=True,
                                           px=None if ttl is None else _millis(ttl))
        return bool(stored)

    async def delete(self, key: str) -> bool:
        with self._failures():
            removed: int = await self._redis.delete(self.prefix + key)
        return removed > 0

    async def take(self, key: str) -> bytes | None:
        with self._failures():
            value = await self._redis.getdel(self.prefix + key)
        return _bytes(value)

    async def incr(self, key: str, ttl: float) -> int:
        check_ttl(ttl)
        with self._failures():
            count = await self._incr(keys=[self.prefix + key], args=[_millis(ttl)])
        return int(count)

    async def ttl(self, key: str) -> float | None:
        with self._failures():
            millis: int = await self._redis.pttl(self.prefix + key)
        # -2: no such key, -1: no expiry; both are None in the Store contract.
        return None if millis < 0 else millis / 1000

    async def sadd(self, key: str, member: str) -> None:
        with self._failures():
            await self._redis.sadd(self.prefix + key, member)

    async def smembers(self, key: str) -> builtins.set[str]:
        # ``builtins``: inside this class, a bare ``set`` names the method above.
        with self._failures():
            members = await self._redis.smembers(self.prefix + key)
        return {m.decode("utf-8") if isinstance(m, bytes) else m for m in members}

    async def srem(self, key: str, member: str) -> None:
        with self._failures():
            # Redis deletes a set with its last member, as the contract asks.
            await self._redis.srem(self.prefix + key, member)

    async def ping(self) -> None:
        with self._failures():
            await self._redis.ping()

    async def aclose(self) -> None:
        # Closing never fails the caller: at shutdown an unreachable Redis has nothing to flush.
        try:
            await self._redis.aclose()
        except (RedisError, OSError):
            pass
        for client in (self._lean, self._tracked):
            if client is not None:
                await client.aclose()  # never raises: it only closes sockets
