"""Real upstreams for the upstream-client tests: asyncio servers on 127.0.0.1, port 0.

Each test hands :class:`Upstream` a coroutine that plays one connection's part byte by byte, so
framing corner cases (chunk extensions, trailers, 1xx, close-delimited bodies, garbage) come from
a real socket rather than a mock. The server counts accepted connections, which is how tests
prove that a connection was or was not reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

# asyncio.StreamWriter.drain raises these when the client is gone; a handler that meets them has
# simply outlived its client, which several tests cause on purpose.
_GONE = (ConnectionError, asyncio.IncompleteReadError)


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    """Run one test's async body with a hard limit, so a framing bug fails instead of hanging."""

    async def limited() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(limited())


@dataclass
class Request:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw_head: bytes
    chunk_sizes: list[int]

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


async def read_request(reader: asyncio.StreamReader, *, read_body: bool = True) -> Request | None:
    """One request as the upstream sees it, or None when the client closed cleanly."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    lines = head[:-4].split(b"\r\n")
    method, target, version = lines[0].split(b" ")
    assert version == b"HTTP/1.1"
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        headers.append((name.lower(), value))
    request = Request(method, target, headers, b"", head, [])
    if not read_body:
        return request
    length = request.header(b"content-length")
    if length is not None:
        request.body = await reader.readexactly(int(length))
    elif request.header(b"transfer-encoding") == b"chunked":
        request.body = await _read_chunked(reader, request.chunk_sizes)
    return request


async def _read_chunked(reader: asyncio.StreamReader, sizes: list[int]) -> bytes:
    # Parsed by hand, strictly, so the client's chunk encoding is checked independently of any
    # library: a wrong size line or a missing CR LF fails the assertion.
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line[:-2], 16)
        sizes.append(size)
        if size == 0:
            assert await reader.readexactly(2) == b"\r\n"
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        assert await reader.readexactly(2) == b"\r\n"


async def wait_eof(reader: asyncio.StreamReader) -> bool:
    """True once the client closed or reset the connection (and sent nothing more)."""
    try:
        return await reader.read(65536) == b""
    except ConnectionError:
        return True


def response(
    status: int = 200,
    body: bytes = b"",
    headers: tuple[tuple[bytes, bytes], ...] = (),
    *,
    reason: bytes = b"OK",
    version: bytes = b"HTTP/1.1",
) -> bytes:
    """A complete response with Content-Length."""
    lines = [b"%s %d %s" % (version, status, reason)]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Upstream:
    """An asyncio server whose every connection runs ``handler(reader, writer, index)``.

    ``index`` counts accepted connections from 1. On exit every connection is closed and every
    handler cancelled, so no transport outlives the test (pytest runs with ``-W error``).
    """

    def __init__(self, handler: Handler, *, rcvbuf: int | None = None) -> None:
        self.handler = handler
        self.rcvbuf = rcvbuf
        self.connections = 0
        self.requests: list[Request] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Upstream:
        sock = socket.socket()
        if self.rcvbuf is not None:
            # Set before listen() so accepted sockets inherit it: a small receive window keeps
            # backpressure tests independent of the host's TCP buffer tuning.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._accept, sock=sock)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()
        # Let the transports' connection_lost callbacks run so the sockets are really closed.
        for _ in range(3):
            await asyncio.sleep(0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        # Cancellation comes from __aexit__; ending normally keeps asyncio's stream callback
        # from logging the cancelled task as an error.
        with contextlib.suppress(*_GONE, asyncio.CancelledError):
            await self.handler(reader, writer, self.connections)
        writer.close()

    def answering(self, body: bytes = b"ok", headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        """Make every connection answer every request with 200 and ``body``, keep-alive."""

        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
        ) -> None:
            while (request := await read_request(reader)) is not None:
                self.requests.append(request)
                writer.write(response(200, body, headers))
                await writer.drain()

        self.handler = handler


def serve_ok(body: bytes = b"ok", headers: tuple[tuple[bytes, bytes], ...] = ()) -> Upstream:
    """A keep-alive upstream that answers every request with 200 and ``body``."""
    upstream = Upstream(_never)
    upstream.answering(body, headers)
    return upstream


async def _never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
    await asyncio.Event().wait()
