"""The data plane's HTTP/1.1 client: a lean keep-alive connection pool to the one upstream.

Why not httpx or aiohttp: at 64 requests in flight httpx's pool costs ~10 ms of CPU per request
and aiohttp's client hop ~115-160 µs; this pool costs ~20 µs (DESIGN.md, "Performance facts").
What buys that:

* the request head is built by hand as bytes and sent, with a small body, in one ``write``;
* the most recently used idle connection is taken first (a list used as a stack), so a few
  warm connections carry the load and cold ones age out;
* a connection returns to the pool the moment its response is complete, even while the caller
  still holds the (fully buffered) body;
* no timer object per request: see :meth:`UpstreamPool._sweep`.

The wire-level protocol lives in :mod:`.upstream_protocol`, the response stream in
:mod:`.upstream_response`.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator
from functools import partial
from typing import Final

from gateway.errors import BadRequest, UpstreamUnavailable
from gateway.forward.upstream_lifecycle import IDLE
from gateway.forward.upstream_protocol import UpstreamConnection
from gateway.forward.upstream_response import UpstreamResponse
from gateway.tasks import cancel_and_wait

__all__ = ["UpstreamPool", "UpstreamResponse"]

# Methods a replay cannot harm (RFC 9110 §9.2.2); only these are retried on a fresh connection.
_IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})

# Methods whose empty body is still announced as "content-length: 0": for them an absent
# length is ambiguous to some servers, while for GET and friends it is the norm.
_BODY_METHODS: Final = frozenset({b"POST", b"PUT", b"PATCH"})

_UNREACHABLE: Final = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN})

# The sweeper wakes at most this often; a deadline fires up to one tick late.
_MAX_TICK: Final = 0.25


class UpstreamPool:
    """Keep-alive HTTP/1.1 connections to one plain-http upstream, ``host:port``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        body_timeout: float | None = 300.0,
        max_idle: int = 256,
        idle_ttl: float = 30.0,
    ) -> None:
        self._host = host
        self._port = port
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._body_timeout = body_timeout
        self._max_idle = max_idle
        self._idle_ttl = idle_ttl
        # Short timeouts (tests, aggressive configs) get a finer tick so a deadline is never
        # late by more than a quarter of itself.
        shortest = min(read_timeout, idle_ttl, body_timeout or read_timeout)
        self._tick = max(0.005, min(_MAX_TICK, shortest / 4))
        self._idle: list[UpstreamConnection] = []
        self._conns: set[UpstreamConnection] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._all_lost: asyncio.Future[None] | None = None

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterator[bytes] = b"",
        *,
        content_length: int | None = None,
    ) -> UpstreamResponse:
        """Send one request; return once the final response head has arrived.

        The caller must ``aclose()`` the response (ideally in a ``finally``): a body left
        unread holds its connection until ``body_timeout`` passes without progress.
        """
        if self._closed:
            raise UpstreamUnavailable(reason="pool_closed")
        head = _request_head(method, target, headers, body, content_length)
        is_head = method == b"HEAD"
        conn = self._take_idle() or await self._connect()
        try:
            return await conn.exchange(head, body, is_head, content_length)
        except UpstreamUnavailable:
            if not (conn.retryable and isinstance(body, bytes) and method in _IDEMPOTENT):
                raise
        # The upstream closed a reused keep-alive connection just as we wrote to it, before
        # answering: the request was almost certainly not processed, and replaying it is safe
        # for an idempotent method with a body we still hold. Once, on a fresh connection.
        conn = await self._connect()
        return await conn.exchange(head, body, is_head, content_length)

    async def aclose(self) -> None:
        """Close every connection (failing requests in flight) and stop the sweeper."""
        self._closed = True
        self._idle.clear()
        for conn in list(self._conns):
            if conn.state == IDLE:
                conn.close()
            else:
                conn._fail(UpstreamUnavailable(reason="pool_closed"))
        await cancel_and_wait(self._sweeper)
        if self._conns:
            # connection_lost runs a loop iteration after close/abort; wait for it so every
            # socket is really closed when this returns.
            self._all_lost = asyncio.get_running_loop().create_future()
            await self._all_lost

    # -- connections -------------------------------------------------------------------------

    def _take_idle(self) -> UpstreamConnection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.state == IDLE:
                return conn
        return None

    async def _connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        factory = partial(UpstreamConnection, self, loop, self._read_timeout, self._body_timeout)
        try:
            # One timer per new connection is fine: connecting is off the hot path.
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(factory, self._host, self._port)
        except TimeoutError as exc:  # Before OSError: TimeoutError is one of its subclasses.
            raise UpstreamUnavailable(reason="connect_timeout") from exc
        except OSError as exc:
            raise UpstreamUnavailable(reason=_connect_failure(exc)) from exc
        if self._closed:
            conn.close()
            raise UpstreamUnavailable(reason="pool_closed")
        return conn

    def _conn_made(self, conn: UpstreamConnection) -> None:
        self._conns.add(conn)
        # A connect that finishes after aclose() is closed by _connect; it needs no sweeper.
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def _conn_idle(self, conn: UpstreamConnection) -> None:
        idle = self._idle
        if self._closed or len(idle) >= self._max_idle:
            conn.close()
            return
        ttl = self._idle_ttl
        hint = conn.keep_alive_hint
        if hint is not None:
            # The upstream announced when it drops idle connections; leave a second earlier so
            # we never write to a connection it is closing (the only unsafe moment for POST).
            ttl = min(ttl, hint - 1.0)
            if ttl <= 0:
                conn.close()
                return
        conn.deadline = conn._loop.time() + ttl
        idle.append(conn)

    def _conn_closing(self, conn: UpstreamConnection) -> None:
        try:
            self._idle.remove(conn)
        except ValueError:
            pass

    def _conn_lost(self, conn: UpstreamConnection) -> None:
        self._conns.discard(conn)
        waiter = self._all_lost
        if waiter is not None and not self._conns and not waiter.done():
            waiter.set_result(None)

    async def _sweep(self) -> None:
        """Enforce every connection's deadline: idle TTL, head, upload and body stalls.

        Why a sweeper and not ``loop.call_at`` per request: measured here, a call_at + cancel
        pair costs 1.3-1.6 µs (uvloop / asyncio) and leaves cancelled handles in the timer heap,
        while moving a deadline is one ``loop.time()`` call and a float store (0.07-0.15 µs).
        The price is precision: a deadline fires up to one tick (≤ 0.25 s) late, which does not
        matter for timeouts measured in seconds. The task exits when the pool has no
        connections and is restarted by the next connect, so an unused pool costs nothing.
        """
        loop = asyncio.get_running_loop()
        conns = self._conns
        try:
            while conns:
                await asyncio.sleep(self._tick)
                now = loop.time()
                for conn in [c for c in conns if c.deadline <= now]:
                    conn.expire()
        finally:
            self._sweeper = None


def _request_head(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes | AsyncIterator[bytes],
    content_length: int | None,
) -> bytes:
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    lines = len(headers) + 3  # request line, headers, framing header, blank line
    if isinstance(body, bytes):
        if body or method in _BODY_METHODS:
            parts.append(b"content-length: %d\r\n\r\n" % len(body))
        else:
            parts.append(b"\r\n")
            lines -= 1
    elif content_length is None:
        parts.append(b"transfer-encoding: chunked\r\n\r\n")
    else:
        parts.append(b"content-length: %d\r\n\r\n" % content_length)
    head = b"".join(parts)
    # Every line ends in exactly one CR LF we put there; any other CR or LF came from a method,
    # target, name or value and would let it start a header or request of its own (request
    # smuggling). Two C-speed scans of ~1 KB cost ~0.25 µs, cheap insurance for the caller.
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise BadRequest(reason="invalid_header_bytes")
    return head


def _connect_failure(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "dns_failure"
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused"
    if exc.errno in _UNREACHABLE:
        return "unreachable"
    return "connect_failed"
