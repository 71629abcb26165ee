"""The data-plane upstream client against real servers on real ports."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.errors import BadRequest, UpstreamTimeout, UpstreamUnavailable
from gateway.forward.upstream import UpstreamPool, UpstreamResponse
from gateway.forward.upstream_protocol import HIGH_WATER, UpstreamConnection
from tests.forward.conftest import (
    Request,
    Upstream,
    read_request,
    response,
    run,
    serve_ok,
    wait_eof,
)

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
HOST = [(b"host", b"upstream.test")]
MiB = 1024 * 1024


def pool_for(upstream: Upstream, **options: Any) -> UpstreamPool:
    return UpstreamPool("127.0.0.1", upstream.port, **options)


async def get(pool: UpstreamPool, target: bytes = b"/", method: bytes = b"GET") -> bytes:
    resp = await pool.request(method, target, HOST)
    try:
        return await resp.read_all()
    finally:
        await resp.aclose()


def only_connection(pool: UpstreamPool) -> UpstreamConnection:
    (conn,) = pool._conns
    return conn


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


# -- connection reuse --------------------------------------------------------------------------


def test_sequential_gets_reuse_one_connection() -> None:
    async def main() -> None:
        async with serve_ok(b"hello") as upstream:
            pool = pool_for(upstream)
            for _ in range(3):
                assert await get(pool) == b"hello"
            await pool.aclose()
        assert upstream.connections == 1
        assert len(upstream.requests) == 3

    run(main())


def test_connection_close_from_upstream_is_not_reused() -> None:
    async def main() -> None:
        async with serve_ok(b"bye", headers=((b"connection", b"close"),)) as upstream:
            pool = pool_for(upstream)
            assert await get(pool) == b"bye"
            assert await get(pool) == b"bye"
            await pool.aclose()
        assert upstream.connections == 2

    run(main())


@pytest.mark.parametrize(
    ("extra", "connections"),
    [((), 2), (((b"connection", b"keep-alive"),), 1)],
    ids=["http10-default-close", "http10-keep-alive"],
)
def test_http10_response_reused_only_with_keep_alive(
    extra: tuple[tuple[bytes, bytes], ...], connections: int
) -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        while await read_request(reader) is not None:
            writer.write(response(200, b"old", extra, version=b"HTTP/1.0"))
            await writer.drain()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            assert await get(pool) == b"old"
            await asyncio.sleep(0.01)
            assert await get(pool) == b"old"
            await pool.aclose()
        assert upstream.connections == connections

    run(main())


def test_upstream_closing_an_idle_connection_is_noticed() -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        writer.write(response(200, b"once"))
        await writer.drain()
        # A keep-alive response, then the server drops the idle connection (its idle timeout).
        writer.close()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            assert await get(pool) == b"once"
            await asyncio.sleep(0.05)
            assert pool._idle == []
            assert await get(pool) == b"once"
            await pool.aclose()
        assert upstream.connections == 2

    run(main())


def test_keep_alive_timeout_hint_shortens_idle_life() -> None:
    async def main() -> None:
        async with serve_ok(b"x", headers=((b"keep-alive", b"timeout=1, max=100"),)) as upstream:
            pool = pool_for(upstream)
            assert await get(pool) == b"x"
            # timeout=1 leaves no safe idle time (we leave a second before the server would).
            assert pool._idle == []
            await pool.aclose()

    run(main())


def test_concurrent_requests_each_get_a_connection_and_max_idle_is_kept() -> None:
    count = 12
    arrived = 0
    all_arrived = asyncio.Event()

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        nonlocal arrived
        while await read_request(reader) is not None:
            arrived += 1
            if arrived == count:
                all_arrived.set()
            # No answer until every request arrived: a client that queued requests on fewer
            # connections would deadlock here and hit the test's time limit.
            await all_arrived.wait()
            writer.write(response(200, b"%d" % index))
            await writer.drain()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream, max_idle=5)
            bodies = await asyncio.gather(*(get(pool) for _ in range(count)))
            assert sorted(bodies) == sorted(b"%d" % i for i in range(1, count + 1))
            assert upstream.connections == count
            await asyncio.sleep(0.05)
            assert len(pool._idle) == 5
            assert len(pool._conns) == 5
            await pool.aclose()

    run(main())


def test_idle_connections_older_than_idle_ttl_are_closed() -> None:
    closed = asyncio.Event()

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        writer.write(response(200, b"x"))
        await writer.drain()
        assert await wait_eof(reader)
        closed.set()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream, idle_ttl=0.2)
            assert await get(pool) == b"x"
            assert len(pool._idle) == 1
            started = time.monotonic()
            await asyncio.wait_for(closed.wait(), 2)
            assert 0.15 < time.monotonic() - started < 1.0
            await asyncio.sleep(0.01)
            assert pool._idle == [] and not pool._conns
            await pool.aclose()

    run(main())


# -- request framing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body", "length"),
    [
        (b"GET", b"", None),
        (b"HEAD", b"", None),
        (b"DELETE", b"", None),
        (b"OPTIONS", b"", None),
        (b"POST", b"", b"0"),
        (b"PUT", b"", b"0"),
        (b"PATCH", b"", b"0"),
        (b"POST", b'{"q":1}', b"7"),
        (b"DELETE", b"x", b"1"),
    ],
)
def test_bytes_body_framing(method: bytes, body: bytes, length: bytes | None) -> None:
    async def main() -> None:
        async with serve_ok(b"") as upstream:
            pool = pool_for(upstream)
            resp = await pool.request(method, b"/p?q=1", [*HOST, (b"x-a", b"1")], body)
            await resp.aclose()
            await pool.aclose()
        (request,) = upstream.requests
        assert request.raw_head.startswith(method + b" /p?q=1 HTTP/1.1\r\nhost: upstream.test\r\n")
        assert request.header(b"content-length") == length
        assert request.header(b"transfer-encoding") is None
        assert request.body == body

    run(main())


def test_iterator_body_with_content_length_is_sent_raw() -> None:
    async def main() -> None:
        async with serve_ok() as upstream:
            pool = pool_for(upstream)
            body = pieces(b"abc", b"", b"defg")
            resp = await pool.request(b"POST", b"/", HOST, body, content_length=7)
            assert await resp.read_all() == b"ok"
            await resp.aclose()
            await pool.aclose()
        (request,) = upstream.requests
        assert request.header(b"content-length") == b"7"
        assert request.body == b"abcdefg"

    run(main())


def test_iterator_body_without_length_streams_chunked() -> None:
    async def main() -> None:
        async with serve_ok() as upstream:
            pool = pool_for(upstream)
            # The empty piece must be skipped: as a chunk it would end the body early.
            body = pieces(b"hello ", b"", b"x" * 70000, b"!")
            resp = await pool.request(b"POST", b"/", HOST, body)
            assert await resp.read_all() == b"ok"
            await resp.aclose()
            assert await get(pool) == b"ok"  # The terminator left the connection reusable.
            await pool.aclose()
        first = upstream.requests[0]
        assert first.header(b"transfer-encoding") == b"chunked"
        assert first.header(b"content-length") is None
        assert first.body == b"hello " + b"x" * 70000 + b"!"
        assert first.chunk_sizes == [6, 70000, 1, 0]
        assert upstream.connections == 1

    run(main())


@pytest.mark.parametrize(
    ("chunks", "reason"),
    [
        ((b"abc",), "body_shorter_than_content_length"),
        ((b"abcdef", b"ghijkl"), "body_longer_than_content_length"),
    ],
)
def test_iterator_body_not_matching_content_length_is_refused(
    chunks: tuple[bytes, ...], reason: str
) -> None:
    saw_eof = asyncio.Event()

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader, read_body=False)
        if await wait_eof(reader) or await wait_eof(reader):
            saw_eof.set()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            with pytest.raises(BadRequest) as caught:
                await pool.request(b"POST", b"/", HOST, pieces(*chunks), content_length=10)
            assert caught.value.reason == reason
            await asyncio.wait_for(saw_eof.wait(), 2)
            await pool.aclose()

    run(main())


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        (b"/", [(b"x-user", b"alice\r\nx-admin: yes")]),
        (b"/", [(b"x-user", b"alice\nx-admin: yes")]),
        (b"/", [(b"x-evil\r\nx-admin", b"yes")]),
        (b"/ HTTP/1.1\r\nhost: a\r\n\r\nGET /admin", []),
    ],
)
def test_cr_or_lf_in_request_head_is_refused_before_sending(
    target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    async def main() -> None:
        async with serve_ok() as upstream:
            pool = pool_for(upstream)
            with pytest.raises(BadRequest) as caught:
                await pool.request(b"GET", target, [*HOST, *headers])
            assert caught.value.reason == "invalid_header_bytes"
            await pool.aclose()
        assert upstream.connections == 0

    run(main())


# -- response framing --------------------------------------------------------------------------


def test_chunked_response_with_extensions_and_trailers_then_reuse() -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-first: 1\r\n\r\n"
            b"5;name=value;flag\r\nhello\r\n"
            b'7;ext="quoted"\r\n, world\r\n'
            b"0\r\nx-trailer: dropped\r\nx-checksum: abc\r\n\r\n"
        )
        await read_request(reader)
        writer.write(response(201, b"second", ((b"x-second", b"2"),)))
        await writer.drain()
        await wait_eof(reader)

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            first = await pool.request(b"GET", b"/", HOST)
            assert first.chunked and first.content_length is None and first.has_body
            assert await first.read_all() == b"hello, world"
            assert first.headers == [(b"transfer-encoding", b"chunked"), (b"x-first", b"1")]
            await first.aclose()
            second = await pool.request(b"GET", b"/", HOST)
            assert second.status == 201
            # The trailers neither leaked into this response nor desynchronised the parser.
            assert second.headers == [(b"x-second", b"2"), (b"content-length", b"6")]
            assert await second.read_all() == b"second"
            await second.aclose()
            await pool.aclose()
        assert upstream.connections == 1

    run(main())


def test_body_until_close_is_read_to_eof_and_not_reused() -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"the end")
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            resp = await pool.request(b"GET", b"/", HOST)
            assert resp.content_length is None and not resp.chunked and resp.has_body
            assert await resp.read_all() == b"until the end"
            await resp.aclose()
            assert await get(pool) == b"until the end"
            await pool.aclose()
        assert upstream.connections == 2

    run(main())


def test_interim_1xx_responses_are_skipped() -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(response(200, b"final", ((b"x-final", b"yes"),)))
            await writer.drain()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            for _ in range(2):
                resp = await pool.request(b"POST", b"/", HOST, b"{}")
                assert resp.status == 200
                assert resp.headers == [(b"x-final", b"yes"), (b"content-length", b"5")]
                assert await resp.read_all() == b"final"
                await resp.aclose()
            await pool.aclose()
        assert upstream.connections == 1

    run(main())


def test_head_204_304_have_no_body_even_with_content_length() -> None:
    answers = [
        (b"HEAD", b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"),
        (b"HEAD", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
        (b"GET", b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"),
        (b"GET", b'HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\netag: "a"\r\n\r\n'),
        (b"GET", response(200, b"after")),
    ]

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        for method, answer in answers:
            request = await read_request(reader)
            assert request is not None and request.method == method
            writer.write(answer)
            await writer.drain()
        await wait_eof(reader)

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            for method, _ in answers[:-1]:
                resp = await pool.request(method, b"/", HOST)
                assert not resp.has_body
                assert resp.content_length is None and not resp.chunked
                assert resp.complete
                assert await resp.read() == b""
                await resp.aclose()
            # The connection is still in step: the last answer arrives intact on it.
            assert await get(pool) == b"after"
            await pool.aclose()
        assert upstream.connections == 1

    run(main())


@pytest.mark.parametrize("same_packet", [True, False], ids=["same-packet", "later"])
def test_unsolicited_bytes_after_a_response_retire_the_connection(same_packet: bool) -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        while await read_request(reader) is not None:
            stray = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n"
            if same_packet:
                writer.write(response(200, b"fine") + stray)
            else:
                writer.write(response(200, b"fine"))
                await writer.drain()
                await asyncio.sleep(0.02)
                writer.write(stray)
            await writer.drain()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            assert await get(pool) == b"fine"
            await asyncio.sleep(0.05)
            assert await get(pool) == b"fine"
            await pool.aclose()
        assert upstream.connections == 2

    run(main())


# -- streaming and backpressure ---------------------------------------------------------------


def test_first_piece_is_readable_before_the_second_is_written() -> None:
    first_read = asyncio.Event()

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
        writer.write(b"transfer-encoding: chunked\r\n\r\n")
        writer.write(b"d\r\ndata: first\n\n\r\n")
        await writer.drain()
        await first_read.wait()
        writer.write(b"e\r\ndata: second\n\n\r\n0\r\n\r\n")
        await writer.drain()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            resp = await pool.request(b"GET", b"/events", HOST)
            assert await asyncio.wait_for(resp.read(), 2) == b"data: first\n\n"
            first_read.set()
            assert await resp.read() == b"data: second\n\n"
            assert await resp.read() == b""
            await resp.aclose()
            await pool.aclose()

    run(main())


def test_upload_waits_for_a_slow_upstream_instead_of_buffering() -> None:
    total = 20 * MiB
    piece = b"u" * (64 * 1024)
    produced = 0
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        nonlocal produced
        while produced < total:
            produced += len(piece)
            yield piece

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        request = await read_request(reader, read_body=False)
        assert request is not None
        await release.wait()
        received = 0
        while received < total:
            received += len(await reader.read(1024 * 1024))
        writer.write(response(200, b"%d" % received))
        await writer.drain()

    async def main() -> None:
        async with Upstream(handler, rcvbuf=64 * 1024) as upstream:
            pool = pool_for(upstream)
            task = asyncio.create_task(
                pool.request(b"PUT", b"/big", HOST, body(), content_length=total)
            )
            await asyncio.sleep(0.5)
            stalled_at = produced
            buffered = only_connection(pool).transport.get_write_buffer_size()
            await asyncio.sleep(0.2)
            # The iterator is not drained ahead of the socket: kernel buffers hold a few MiB at
            # most, and the transport's own buffer stays near its 64 KiB high-water mark.
            assert produced == stalled_at < total // 2
            assert buffered < 1 * MiB
            release.set()
            resp = await task
            assert await resp.read_all() == b"%d" % total
            await resp.aclose()
            await pool.aclose()
        assert produced == total

    run(main(), timeout=30)


def test_slow_consumer_pauses_reading_from_upstream() -> None:
    total = 8 * MiB
    sent = 0

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        block = b"d" * (256 * 1024)
        while sent < total:
            writer.write(block)
            sent += len(block)
            await writer.drain()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            resp = await pool.request(b"GET", b"/big", HOST)
            await asyncio.sleep(0.3)
            conn = only_connection(pool)
            assert conn._reading_paused
            assert not conn.transport.is_reading()
            # One read's worth at most above the mark: memory does not follow the upstream.
            assert HIGH_WATER < resp._size <= HIGH_WATER + 512 * 1024
            assert sent < total
            assert len(await resp.read_all()) == total
            await resp.aclose()
            await pool.aclose()

    run(main(), timeout=30)


def test_upload_stops_when_the_upstream_answers_early() -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader, read_body=False)
        # Refuse without reading the body, and keep the connection open: the client must not
        # hang on its blocked upload.
        writer.write(response(413, b"too big", reason=b"Payload Too Large"))
        await writer.drain()
        await asyncio.Event().wait()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"z" * 65536

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            resp = await pool.request(b"POST", b"/", HOST, endless(), content_length=1 << 40)
            assert resp.status == 413
            assert await resp.read_all() == b"too big"
            await resp.aclose()
            await asyncio.sleep(0.01)
            assert not pool._conns  # Not reused: the upstream never got the whole body.
            await pool.aclose()

    run(main())


# -- a connection the caller abandons ------------------------------------------------------------


def test_aclose_mid_stream_closes_the_connection() -> None:
    saw_eof = asyncio.Event()

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        if index == 1:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n")
            await writer.drain()
            if await wait_eof(reader):
                saw_eof.set()
        else:
            writer.write(response(200, b"fresh"))
            await writer.drain()
            await wait_eof(reader)

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            resp = await pool.request(b"GET", b"/stream", HOST)
            assert await resp.read() == b"one"
            await resp.aclose()
            await resp.aclose()  # Idempotent.
            assert await resp.read() == b""
            await asyncio.wait_for(saw_eof.wait(), 2)
            assert await get(pool) == b"fresh"
            await pool.aclose()
        assert upstream.connections == 2

    run(main())


def test_cancelled_request_closes_its_connection() -> None:
    saw_eof = asyncio.Event()

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        if await wait_eof(reader):
            saw_eof.set()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            task = asyncio.create_task(pool.request(b"GET", b"/", HOST))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(saw_eof.wait(), 2)
            await asyncio.sleep(0.01)
            assert not pool._conns
            await pool.aclose()

    run(main())


def test_read_all_limit_closes_and_raises() -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(b"10\r\n0123456789abcdef\r\n")
            await writer.drain()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            resp = await pool.request(b"GET", b"/", HOST)
            with pytest.raises(UpstreamUnavailable) as caught:
                await resp.read_all(limit=10)
            assert caught.value.reason == "response_too_large"
            await asyncio.sleep(0.01)
            assert not pool._conns
            await pool.aclose()

    run(main())


# -- retries -----------------------------------------------------------------------------------


def _closes_reused_connection_after_reading() -> tuple[Upstream, list[bytes]]:
    seen: list[bytes] = []

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        request = await read_request(reader)
        assert request is not None
        seen.append(request.method)
        writer.write(response(200, b"first" if index == 1 else b"fresh"))
        await writer.drain()
        if index == 1:
            # The next request arrives and the server closes instead of answering, as a server
            # does when its idle timeout fires just as the request was written.
            request = await read_request(reader)
            assert request is not None
            seen.append(request.method)
            writer.close()
        else:
            await wait_eof(reader)

    return Upstream(handler), seen


def test_idempotent_request_is_retried_once_on_a_fresh_connection() -> None:
    async def main() -> None:
        upstream, seen = _closes_reused_connection_after_reading()
        async with upstream:
            pool = pool_for(upstream)
            assert await get(pool) == b"first"
            assert await get(pool) == b"fresh"
            await pool.aclose()
        assert upstream.connections == 2
        assert seen == [b"GET", b"GET", b"GET"]

    run(main())


@pytest.mark.parametrize(
    ("method", "streamed"),
    [(b"POST", False), (b"PATCH", False), (b"PUT", True)],
    ids=["post-bytes", "patch-bytes", "put-iterator"],
)
def test_non_idempotent_or_unreplayable_request_is_not_retried(
    method: bytes, streamed: bool
) -> None:
    async def main() -> None:
        upstream, seen = _closes_reused_connection_after_reading()
        async with upstream:
            pool = pool_for(upstream)
            assert await get(pool) == b"first"
            # PUT is idempotent, but a body that came from an iterator cannot be sent again.
            body: bytes | AsyncIterator[bytes] = pieces(b"{}") if streamed else b"{}"
            with pytest.raises(UpstreamUnavailable) as caught:
                await pool.request(method, b"/", HOST, body)
            assert caught.value.reason == "closed_before_response"
            await pool.aclose()
        assert upstream.connections == 1
        assert seen == [b"GET", method]

    run(main())


# -- errors --------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_connect_refused() -> None:
    async def main() -> None:
        pool = UpstreamPool("127.0.0.1", _closed_port())
        with pytest.raises(UpstreamUnavailable) as caught:
            await pool.request(b"GET", b"/", HOST)
        assert caught.value.reason == "connect_refused"
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)
        await pool.aclose()

    run(main())


def test_connect_timeout() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def hanging_connect(*args: Any, **kwargs: Any) -> Any:
            await asyncio.Event().wait()  # A SYN nobody answers.

        loop.create_connection = hanging_connect  # type: ignore[method-assign]
        pool = UpstreamPool("127.0.0.1", 9, connect_timeout=0.1)
        with pytest.raises(UpstreamUnavailable) as caught:
            await pool.request(b"GET", b"/", HOST)
        assert caught.value.reason == "connect_timeout"
        await pool.aclose()

    run(main())


def test_dns_failure() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def failing_getaddrinfo(*args: Any, **kwargs: Any) -> Any:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        loop.getaddrinfo = failing_getaddrinfo  # type: ignore[method-assign]
        pool = UpstreamPool("chatbot.invalid", 80)
        with pytest.raises(UpstreamUnavailable) as caught:
            await pool.request(b"GET", b"/", HOST)
        assert caught.value.reason == "dns_failure"
        await pool.aclose()

    run(main())


def test_no_response_head_within_read_timeout() -> None:
    saw_eof = asyncio.Event()

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        if await wait_eof(reader):
            saw_eof.set()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream, read_timeout=0.2)
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as caught:
                await pool.request(b"GET", b"/", HOST)
            assert caught.value.reason == "read_timeout"
            assert 0.2 <= time.monotonic() - started < 1.0
            await asyncio.wait_for(saw_eof.wait(), 2)
            await pool.aclose()

    run(main())


def test_upstream_not_reading_the_upload_within_read_timeout() -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader, read_body=False)
        await asyncio.Event().wait()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"w" * 65536

    async def main() -> None:
        async with Upstream(handler, rcvbuf=64 * 1024) as upstream:
            pool = pool_for(upstream, read_timeout=0.2)
            with pytest.raises(UpstreamTimeout) as caught:
                await pool.request(b"POST", b"/", HOST, endless())
            assert caught.value.reason == "write_timeout"
            await asyncio.sleep(0.01)
            assert not pool._conns
            await pool.aclose()

    run(main())


def test_body_stall_longer_than_body_timeout() -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await writer.drain()
        await wait_eof(reader)

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream, body_timeout=0.2)
            resp = await pool.request(b"GET", b"/", HOST)
            assert await resp.read() == b"abc"
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as caught:
                await resp.read()
            assert caught.value.reason == "body_timeout"
            assert time.monotonic() - started < 1.0
            await resp.aclose()
            await asyncio.sleep(0.01)
            assert not pool._conns
            await pool.aclose()

    run(main())


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"garbage\r\n\r\n", "malformed_response"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nxx",
            "malformed_response",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n",
            "unexpected_upgrade",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "closed_mid_head"),
        (b"", "closed_before_response"),
    ],
    ids=["garbage", "duplicate-length", "upgrade", "mid-head", "no-answer"],
)
def test_broken_response_heads(answer: bytes, reason: str) -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            with pytest.raises(UpstreamUnavailable) as caught:
                await pool.request(b"GET", b"/", HOST)
            assert caught.value.reason == reason
            await pool.aclose()
        # A fresh connection is never retried, whatever the method.
        assert upstream.connections == 1

    run(main())


def test_close_mid_body_raises_from_read() -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            resp = await pool.request(b"GET", b"/", HOST)
            assert await resp.read() == b"abc"
            with pytest.raises(UpstreamUnavailable) as caught:
                await resp.read()
            assert caught.value.reason == "closed_mid_body"
            assert not resp.complete
            await resp.aclose()
            await pool.aclose()

    run(main())


def test_pool_aclose_fails_requests_in_flight_and_refuses_new_ones() -> None:
    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        await read_request(reader)
        await wait_eof(reader)

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            task = asyncio.create_task(pool.request(b"GET", b"/", HOST))
            await asyncio.sleep(0.1)
            await pool.aclose()
            with pytest.raises(UpstreamUnavailable) as caught:
                await task
            assert caught.value.reason == "pool_closed"
            assert not pool._conns and pool._sweeper is None
            with pytest.raises(UpstreamUnavailable):
                await pool.request(b"GET", b"/", HOST)

    run(main())


def test_response_object_api() -> None:
    async def main() -> None:
        async with serve_ok(b"body", headers=((b"X-Mixed-Case", b"Value"),)) as upstream:
            pool = pool_for(upstream)
            resp = await pool.request(b"GET", b"/", HOST)
            assert isinstance(resp, UpstreamResponse)
            assert resp.status == 200
            assert resp.headers == [(b"x-mixed-case", b"Value"), (b"content-length", b"4")]
            assert resp.content_length == 4 and not resp.chunked and resp.has_body
            # A small response is complete on arrival; its connection is already back home.
            assert pool._idle and not resp.complete
            assert await resp.read() == b"body"
            assert resp.complete
            await resp.aclose()
            await pool.aclose()

    run(main())


def test_request_after_failed_one_is_unaffected() -> None:
    requests: list[Request] = []

    async def handler(reader: Reader, writer: Writer, index: int) -> None:
        while (request := await read_request(reader)) is not None:
            requests.append(request)
            writer.write(response(200, request.target))
            await writer.drain()

    async def main() -> None:
        async with Upstream(handler) as upstream:
            pool = pool_for(upstream)
            with pytest.raises(BadRequest):
                await pool.request(b"GET", b"/a", [(b"x", b"\r\n")])
            assert await get(pool, b"/b") == b"/b"
            await pool.aclose()
        assert [r.target for r in requests] == [b"/b"]

    run(main())
