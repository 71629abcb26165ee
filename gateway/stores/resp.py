"""A lean RESP client for the one Redis command on every request's path: the session GET.

Why it exists (bench/RESULTS.md, "gateway, session-cookie path on Redis"): redis-py spends
~68 µs of CPU per GET there — ``BlockingConnectionPool.get_connection`` with an
``asyncio.timeout`` and a Condition, ``pack_command``, a read timeout per reply — plus ~25 µs
of garbage collection for what it allocates, which was a third of the gateway's whole budget
per request. This client does the same GET for a few µs: see ``bench/micro_redis_get.py``.
Everything else (scripts, SET NX, GETDEL, sets, scans) stays on redis-py in
:mod:`gateway.stores.redis`; only the hot read comes here.

How it stays cheap:

* A command is one pre-encoded bytes object. Commands issued in the same event-loop iteration
  are joined and written with one ``transport.write`` (one system call for a burst of
  concurrent requests), and replies are matched to their waiters in order (FIFO): many
  concurrent GETs share one pipelined connection, so a burst costs one write and usually one
  read.
* A few connections at most (``max_connections``): a second one opens only when the first has
  ``PIPELINE_DEPTH`` replies outstanding, so a huge value does not stall a deep queue behind it.
* No timer per command: a connection remembers when it last made progress (sent its first
  outstanding command, or received bytes), and one sweeper task per client fails every waiter
  of a connection that made none for ``timeout`` seconds, then aborts it. A deadline can fire
  up to one tick (a quarter of the timeout, at most 0.25 s) late.
* Connections open lazily on first use (AUTH and SELECT pipelined with no round trip of their
  own wasted), and again after one is lost.

Failures are OSError subclasses, so :class:`gateway.stores.redis.RedisStore` translates them
with everything else: :class:`ConnectionError` (refused, lost, closed, a reply that is not
RESP), :class:`TimeoutError` (no progress within the timeout), and
:class:`~gateway.stores.resp_wire.ReplyError`, an error reply such as ``WRONGTYPE`` (not an
OSError: it is the server's answer, not an outage of the link). Messages never carry the URL,
the password or a value.

Three modules: the client and its sweeper here; one connection in
:mod:`gateway.stores.resp_connection`; the wire format (URLs, with the URLs this client refuses
as :class:`~gateway.stores.resp_wire.UnsupportedURL`, commands, replies and the error classes)
in :mod:`gateway.stores.resp_wire`. :class:`~gateway.stores.resp_tracked.TrackedClient`, the
WebSocket re-check's client-side cache, is a subclass of this client (the ``_push`` and
``_on_tick`` hooks below are for it).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Final

from gateway.stores.resp_connection import _Connection
from gateway.stores.resp_wire import Endpoint, Push, Reply, ReplyError, encode, parse_url
from gateway.tasks import cancel_and_wait

__all__ = ["RespClient"]

# Outstanding replies on one connection before a further connection is opened (if allowed).
PIPELINE_DEPTH: Final = 64
MAX_CONNECTIONS: Final = 4
# The sweeper wakes at most this often.
_MAX_TICK: Final = 0.25


def _cancelling() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


class RespClient:
    """A handful of pipelined connections to one Redis; see the module docstring."""

    def __init__(self, url: str, *, timeout: float, max_connections: int = MAX_CONNECTIONS
                 ) -> None:
        self.endpoint = parse_url(url)
        self.timeout = timeout
        self.max_connections = max(1, max_connections)
        self._tick = max(0.005, min(_MAX_TICK, timeout / 4))
        self._handshake = self._handshake_commands(self.endpoint)
        self._conns: list[_Connection] = []  # open ones, in the order they were made
        self._all: set[_Connection] = set()  # every connection not yet lost (for aclose)
        self._current: _Connection | None = None  # where commands go while it has room
        self._connecting: asyncio.Task[_Connection] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._epoch = 0

    @staticmethod
    def _handshake_commands(endpoint: Endpoint) -> list[bytes]:
        commands = []
        if endpoint.password:
            credentials = [endpoint.password.encode()]
            if endpoint.username:
                credentials.insert(0, endpoint.username.encode())
            commands.append(encode(b"AUTH", *credentials))
        if endpoint.db:
            commands.append(encode(b"SELECT", b"%d" % endpoint.db))
        return commands

    # -- commands ----------------------------------------------------------------------------

    async def get(self, key: bytes) -> bytes | None:
        """GET ``key``: its value, or None. Retried once if the connection was lost."""
        command = b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(key), key)
        reply = await self._call(command)
        if reply is None or isinstance(reply, bytes):
            return reply
        raise ReplyError("unexpected reply type to GET")

    async def execute(self, *args: bytes) -> Reply:
        """Any command whose replay is harmless (it is retried once on a lost connection)."""
        return await self._call(encode(*args))

    async def _call(self, command: bytes) -> Reply:
        conn = self._current
        if conn is None or conn.closed or len(conn.pending) >= PIPELINE_DEPTH:
            conn = await self._acquire()
        try:
            return await conn.send(command)
        except ConnectionError:
            # Redis closed the connection (idle timeout, restart, CLIENT KILL) as we wrote, or
            # while the reply was due: the command is idempotent, so try once more on a fresh
            # connection. A timeout is not retried: that would only double the wait for a 503;
            # nor is a command aclose() cut off.
            if conn.epoch != self._epoch:
                raise
        conn = await self._acquire()
        return await conn.send(command)

    # -- connections -------------------------------------------------------------------------

    async def _acquire(self) -> _Connection:
        conn = self._current
        if conn is not None and not conn.closed and len(conn.pending) < PIPELINE_DEPTH:
            return conn
        live = [c for c in self._conns if not c.closed]
        for candidate in live:
            if len(candidate.pending) < PIPELINE_DEPTH:
                self._current = candidate
                return candidate
        if len(live) < self.max_connections:
            connecting = self._connecting
            if connecting is None:
                connecting = self._connecting = asyncio.get_running_loop().create_task(
                    self._connect())
                connecting.add_done_callback(self._connected)
            try:
                # shield: a caller that gives up does not abort the connect others wait for.
                conn = await asyncio.shield(connecting)
            except asyncio.CancelledError:
                if connecting.cancelled() and not _cancelling():
                    raise ConnectionError("redis client closed") from None  # by aclose()
                raise
            if not conn.closed:
                self._current = conn
                return conn
            raise ConnectionError("connection to redis lost")
        # Every connection is deep in its pipeline and no more are allowed: queue on the
        # least busy one.
        return min(live, key=lambda c: len(c.pending))

    def _connected(self, task: asyncio.Task[_Connection]) -> None:
        self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved here; every waiter got it through the shield

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        endpoint = self.endpoint
        factory = partial(_Connection, self, loop)
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self.timeout):  # connecting is off the hot path
                if endpoint.host is None:
                    _, conn = await loop.create_unix_connection(factory, endpoint.path)
                else:
                    _, conn = await loop.create_connection(factory, endpoint.host,
                                                           endpoint.port)
                if self._handshake:
                    replies = await asyncio.gather(
                        *(conn.send(command) for command in self._handshake),
                        return_exceptions=True)
                    for reply in replies:
                        if isinstance(reply, BaseException):
                            raise reply
        except ReplyError as exc:
            # A refused AUTH or SELECT (the reply names the problem, never the password).
            self._discard(conn)
            raise ConnectionError(f"redis refused the connection setup: {exc}") from None
        except TimeoutError:
            self._discard(conn)
            raise TimeoutError("connecting to redis timed out") from None
        except OSError as exc:
            self._discard(conn)
            if type(exc) is ConnectionError:
                raise  # ours: lost during the handshake
            raise ConnectionError(f"cannot connect to redis ({type(exc).__name__})") from exc
        except BaseException:
            self._discard(conn)
            raise
        if not conn.closed:
            self._conns.append(conn)
            if self._sweeper is None:
                self._sweeper = loop.create_task(self._sweep())
        return conn

    def _discard(self, conn: _Connection | None) -> None:
        if conn is not None:
            conn.close(abort=True)

    def _conn_closing(self, conn: _Connection) -> None:
        try:
            self._conns.remove(conn)
        except ValueError:
            pass
        if self._current is conn:
            self._current = None

    def _conn_lost(self, conn: _Connection) -> None:
        self._all.discard(conn)

    def _push(self, conn: _Connection, push: Push) -> None:
        """An out-of-band message: none is expected on a RESP2 connection, so it is dropped."""

    def _on_tick(self, now: float) -> None:
        """Called by the sweeper every tick while connections are open (a hook for subclasses)."""

    async def _sweep(self) -> None:
        """Fail connections whose outstanding replies made no progress within the timeout.

        One task per client instead of a timer per command: ``asyncio.timeout`` per GET cost
        ~4 µs, a ``call_at`` + cancel pair ~1.5 µs; noting the time of progress costs ~0.1 µs.
        The task ends when the client has no connection and is restarted by the next connect.
        """
        loop = asyncio.get_running_loop()
        conns = self._conns
        timeout = self.timeout
        try:
            while conns:
                await asyncio.sleep(self._tick)
                now = loop.time()
                self._on_tick(now)
                limit = now - timeout
                for conn in [c for c in conns if c.pending and c.progress <= limit]:
                    conn.fail(TimeoutError("redis did not answer in time"))
        finally:
            self._sweeper = None

    async def aclose(self) -> None:
        """Close every connection (failing commands in flight); a later command reconnects."""
        self._epoch += 1
        await cancel_and_wait(self._connecting)
        for conn in list(self._all):
            if conn.pending:
                conn.fail(ConnectionError("redis client closed"))
            else:
                conn.close()
        await cancel_and_wait(self._sweeper)
        waiters = [conn.lost_waiter for conn in self._all if conn.transport is not None]
        if waiters:
            # connection_lost runs a loop iteration after close/abort: wait for it, so every
            # socket is really closed when this returns.
            await asyncio.wait(waiters)
        self._all.clear()
