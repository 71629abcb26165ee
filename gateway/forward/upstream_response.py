"""The response stream of one upstream request: its head, and its body as pieces arrive.

:class:`UpstreamResponse` is what :class:`~gateway.forward.upstream_protocol.UpstreamConnection`
hands back once the final response head is in; the connection keeps filling it as the body
arrives, and ``read()`` hands out whatever is buffered. It lives apart from the connection so
each module holds one side: the wire and its framing there, the consumer's view of one body
here. It knows its connection only through :class:`ResponseConnection`, so neither module
imports the other's.

A body that outgrows the caller's ``read_all`` limit closes the connection and raises
:class:`~gateway.errors.UpstreamUnavailable`; a connection that fails mid-body ends the stream
with the error it failed with.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from gateway.errors import UpstreamError, UpstreamUnavailable


class ResponseConnection(Protocol):
    """What a response needs from the connection its body streams from."""

    _loop: asyncio.AbstractEventLoop
    _reading_paused: bool
    _response: UpstreamResponse | None

    def _resume_reading(self) -> None: ...
    def close(self, abort: bool = False) -> None: ...


class UpstreamResponse:
    """The final response to one request: its head, and its body as a stream of pieces."""

    __slots__ = (
        "_buf",
        "_conn",
        "_eof",
        "_error",
        "_size",
        "_waiter",
        "chunked",
        "content_length",
        "has_body",
        "headers",
        "status",
    )

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        chunked: bool,
        has_body: bool,
        conn: ResponseConnection,
    ) -> None:
        self.status = status
        self.headers = headers
        self.content_length = content_length if has_body else None
        self.chunked = chunked and has_body
        self.has_body = has_body
        self._buf: list[bytes] = []
        self._size = 0
        self._eof = not has_body
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        # Set while the body still streams from the connection; cleared the moment the whole
        # body has been received (the connection then already serves other requests) or the
        # connection failed.
        self._conn: ResponseConnection | None = conn

    @property
    def complete(self) -> bool:
        """True when the whole body was received and handed out: ``read()`` would return b""."""
        return self._eof and not self._buf and self._error is None

    async def read(self) -> bytes:
        """Everything received since the last call, waiting for at least one byte; b"" at end."""
        while True:
            buf = self._buf
            if buf:
                data = buf[0] if len(buf) == 1 else b"".join(buf)
                buf.clear()
                self._size = 0
                conn = self._conn
                if conn is not None and conn._reading_paused:
                    conn._resume_reading()
                return data
            if self._error is not None:
                raise self._error
            conn = self._conn
            if self._eof or conn is None:
                return b""
            waiter = self._waiter = conn._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def read_all(self, limit: int | None = None) -> bytes:
        """The rest of the body; more than ``limit`` bytes closes the connection and raises."""
        if limit is not None and self.content_length is not None and self.content_length > limit:
            await self.aclose()
            raise UpstreamUnavailable(reason="response_too_large")
        parts: list[bytes] = []
        size = 0
        while piece := await self.read():
            size += len(piece)
            if limit is not None and size > limit:
                await self.aclose()
                raise UpstreamUnavailable(reason="response_too_large")
            parts.append(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        """Stop reading; a body still in flight closes the connection (it is never reused).

        A connection whose response was fully received went back to the pool at that moment, so
        there is nothing left to return here; one still streaming holds the unread rest of the
        body on the wire and can only be closed.
        """
        self._buf.clear()
        self._size = 0
        self._eof = True
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn._response = None
            conn.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
