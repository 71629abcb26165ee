"""One keep-alive HTTP/1.1 connection to the upstream: the exchange on the wire and its framing.

:class:`UpstreamConnection` is an ``asyncio.Protocol`` that writes one request at a time, feeds
every byte it receives to an ``httptools.HttpResponseParser`` and turns the parser's callbacks
into an :class:`~gateway.forward.upstream_response.UpstreamResponse`, the stream the caller
reads the body from (:mod:`gateway.forward.upstream_response`). The pool in
:mod:`gateway.forward.upstream` owns connections, picks one per request and enforces deadlines;
this module owns the wire and its framing rules (HEAD, 204 and 304 have no body; chunked;
Content-Length). The connection's states (IDLE, WAITING, BODY, CLOSED) and the transitions
that end an exchange (finish, fail, expire, close, and connection lost, which also ends a body
delimited by the close) are in its base class,
:class:`~gateway.forward.upstream_lifecycle.ConnectionLifecycle`.

Every failure becomes a :class:`~gateway.errors.UpstreamUnavailable` or
:class:`~gateway.errors.UpstreamTimeout` here, so no ``OSError`` or parser error reaches callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

import httptools

from gateway.errors import BadRequest, UpstreamUnavailable
from gateway.forward.upstream_lifecycle import (
    BODY,
    IDLE,
    INF,
    WAITING,
    ConnectionLifecycle,
    ConnectionOwner,
)
from gateway.forward.upstream_response import UpstreamResponse

# Above this many buffered, unread response bytes the socket stops being read, so a slow
# client makes the upstream wait instead of making the gateway's memory grow. ``read()`` hands
# out everything buffered at once, so the buffer drops to zero and reading resumes right away.
HIGH_WATER: Final = 256 * 1024

# A bytes body up to this size goes out in the same ``write`` as the head (one syscall); a
# larger one is written separately, because copying it just to save a syscall costs more.
_COALESCE_LIMIT: Final = 64 * 1024


class UpstreamConnection(ConnectionLifecycle):
    """One TCP connection to the upstream; serves one request at a time, no pipelining."""

    __slots__ = (
        "_headers",
        "_is_head",
        "_parser",
        "_read_timeout",
        "_write_paused",
        "keep_alive_hint",
    )

    def __init__(
        self,
        owner: ConnectionOwner[UpstreamConnection],
        loop: asyncio.AbstractEventLoop,
        read_timeout: float,
        body_timeout: float | None,
    ) -> None:
        super().__init__(owner, loop, body_timeout)
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self.keep_alive_hint: float | None = None
        self._is_head = False
        self._write_paused = False
        self._headers: list[tuple[bytes, bytes]] = []

    # -- the request side -------------------------------------------------------------------

    async def exchange(
        self,
        head: bytes,
        body: bytes | AsyncIterator[bytes],
        is_head: bool,
        content_length: int | None,
    ) -> UpstreamResponse:
        """Send one request and return its final response head (the body keeps streaming)."""
        if self.state != IDLE:
            raise self.error or UpstreamUnavailable(reason="connection_closed")
        self.state = WAITING
        self._got_bytes = False
        self._is_head = is_head
        self._reuse = True
        self.retryable = False
        waiter: asyncio.Future[UpstreamResponse] = self._loop.create_future()
        self._head_waiter = waiter
        try:
            if isinstance(body, bytes):
                if len(body) <= _COALESCE_LIMIT:
                    self.transport.write(head + body)
                else:
                    self.transport.write(head)
                    self.transport.write(body)
            else:
                await self._send_stream(head, body, content_length)
            if self.state == WAITING:
                self.deadline = self._loop.time() + self._read_timeout
            return await waiter
        except BaseException:
            # A cancelled or failed exchange leaves the wire in an unknown state. The check
            # matters: if the response already completed, the connection went back to the pool
            # and may now serve someone else's request, which must not be cut off.
            if self._head_waiter is waiter:
                self._head_waiter = None
                self._response = None
                self.close()
            # Nobody will await the waiter any more; settle it so asyncio does not log
            # "Future exception was never retrieved" for an error we already handled.
            if waiter.done():
                if not waiter.cancelled():
                    waiter.exception()
            else:
                waiter.cancel()
            raise

    async def _send_stream(
        self, head: bytes, body: AsyncIterator[bytes], content_length: int | None
    ) -> None:
        limit = -1 if content_length is None else content_length
        chunked = limit < 0
        pending = head
        sent = 0
        self._sending = True
        # Waiting for the caller's iterator (a slow client upload) is not an upstream stall,
        # so no deadline runs then; one runs only while the upstream does not drain our writes.
        self.deadline = INF
        try:
            async for piece in body:
                if self.state != WAITING:
                    break
                if not piece:
                    # An empty chunk would be the chunked terminator and end the body early.
                    continue
                sent += len(piece)
                if chunked:
                    data = b"%s%x\r\n%s\r\n" % (pending, len(piece), piece)
                else:
                    if sent > limit:
                        # Sending more than announced would smuggle bytes into the next request.
                        raise BadRequest(reason="body_longer_than_content_length")
                    data = pending + piece
                pending = b""
                self.transport.write(data)
                if self._write_paused:
                    await self._drain()
                    if self.state != WAITING:
                        break
            else:
                if self.state == WAITING:
                    if chunked:
                        self.transport.write(pending + b"0\r\n\r\n")
                    elif sent != limit:
                        raise BadRequest(reason="body_shorter_than_content_length")
                    elif pending:
                        self.transport.write(pending)
                return
            # A final response (or a failure) arrived before the body was fully sent: the
            # upstream's view of the request framing is unknown, so the connection is not reused.
            self._reuse = False
        finally:
            self._sending = False

    async def _drain(self) -> None:
        # The upstream is not reading what we write; that counts against read_timeout.
        self.deadline = self._loop.time() + self._read_timeout
        waiter = self._drain_waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._drain_waiter = None
            if self.state == WAITING:
                self.deadline = INF

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    # -- the response side ------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == BODY:
            self.deadline = self._loop.time() + self._body_timeout
        elif state == WAITING:
            self._got_bytes = True
        else:
            # Bytes nobody asked for (e.g. a 408 some servers send before closing an idle
            # connection): the connection can no longer be trusted with a request.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._fail(UpstreamUnavailable(reason="unexpected_upgrade"), exc)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamUnavailable(reason="malformed_response"), exc)

    # -- httptools callbacks (looked up by name when the parser is created) -------------------

    def on_message_begin(self) -> None:
        if self.state != WAITING:
            # A second message after the complete response (or bytes after a HEAD response):
            # the upstream is out of step with us.
            self.close()
            return
        self._headers = []
        self._content_length = None
        self._chunked = False
        self.keep_alive_hint = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.state != WAITING:
            return  # Trailers after a chunked body: dropped, they are rare and never needed.
        name = name.lower()
        self._headers.append((name, value))
        if name == b"content-length":
            self._content_length = int(value)
        elif name == b"transfer-encoding":
            self._chunked = value.lower().rstrip().endswith(b"chunked")
        elif name == b"keep-alive":
            self.keep_alive_hint = _keep_alive_timeout(value)

    def on_headers_complete(self) -> None:
        if self.state != WAITING:
            return
        parser = self._parser
        status: int = parser.get_status_code()
        if status < 200:
            # An interim response (100 Continue, 103 Early Hints): skipped; the parser resets
            # for the final response, whose headers on_message_begin starts afresh.
            return
        if not parser.should_keep_alive():
            self._reuse = False
        has_body = not (self._is_head or status == 204 or status == 304)
        response = UpstreamResponse(
            status, self._headers, self._content_length, self._chunked, has_body, self
        )
        self._response = response
        self.state = BODY
        self.deadline = self._loop.time() + self._body_timeout
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        # An upload blocked on a full socket stops as soon as the final answer is in.
        self._wake_drain()
        if self._is_head:
            # httptools ignores on_headers_complete's return value, so llhttp cannot be told
            # that a HEAD response has no body: it would wait for Content-Length bytes that
            # never come. Finish the message here and parse the next one with a fresh parser.
            # (A HEAD response without Content-Length or chunked looks close-delimited to
            # llhttp, so should_keep_alive() said no above: conservative, and HEAD is rare.)
            self._parser = httptools.HttpResponseParser(self)
            self._finish()

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response is None or self.state != BODY:
            if self.state == IDLE:
                self.close()  # Body bytes after a HEAD response: the upstream is out of step.
            return
        response._buf.append(body)
        response._size += len(body)
        response._wake()
        if response._size > HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.state == BODY:
            self._finish()
        # Otherwise: the end of an interim 1xx response, or of a HEAD response's phantom body.


def _keep_alive_timeout(value: bytes) -> float | None:
    """The ``timeout=N`` of a ``Keep-Alive`` response header, if any."""
    for part in value.split(b","):
        key, _, number = part.strip().partition(b"=")
        if key.strip().lower() == b"timeout":
            try:
                return float(number.strip())
            except ValueError:
                return None
    return None
