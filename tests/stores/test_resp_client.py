"""The lean RESP client behind RedisStore.get: against the real Redis, and real sockets for faults.

Faults Redis cannot be asked to produce (a server that never answers, one that drops every
connection, replies cut into 7-byte pieces) come from :class:`FakeRedis`, a real asyncio server
on 127.0.0.1 that speaks just enough RESP for one test. No mocks: every byte crosses a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from redis.asyncio.connection import parse_url as redis_parse_url

from gateway.errors import StoreUnavailable
from gateway.stores.redis import RedisStore
from gateway.stores.resp import MAX_CONNECTIONS, RespClient
from gateway.stores.resp_wire import Endpoint, ReplyError, UnsupportedURL, parse_url
from tests.support.procs import free_port
from tests.support.redis import RedisTarget

Handler = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture
def prefix(redis_target: RedisTarget) -> Iterator[str]:
    """A key prefix of this test's own, deleted afterwards."""
    prefix = redis_target.fresh_prefix("resp")
    yield prefix
    redis_target.delete_prefix(prefix)


@pytest.fixture
def sync_redis(redis_target: RedisTarget) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_target.url) as client:
        yield client


async def read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    """One RESP command array from a client, or None at end of stream."""
    try:
        line = await reader.readline()
        if not line:
            return None
        args = []
        for _ in range(int(line[1:])):
            size = int((await reader.readline())[1:])
            args.append((await reader.readexactly(size + 2))[:-2])
        return args
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class FakeRedis:
    """A real TCP (or unix socket) server; ``handler(n, reader, writer)`` serves connection n."""

    def __init__(self, handler: Handler, unix_path: Path | None = None) -> None:
        self.handler = handler
        self.unix_path = unix_path
        self.connections = 0
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        if self.unix_path is not None:
            return f"unix://{self.unix_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> FakeRedis:
        if self.unix_path is not None:
            self._server = await asyncio.start_unix_server(self._serve, str(self.unix_path))
        else:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            await self.handler(self.connections, reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await self._server.wait_closed()


async def answer_gets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every GET with the key itself upper-cased; anything else with +OK."""
    while (command := await read_command(reader)) is not None:
        if command[0] == b"GET":
            value = command[1].upper()
            writer.write(b"$%d\r\n%b\r\n" % (len(value), value))
        else:
            writer.write(b"+OK\r\n")
        await writer.drain()


async def silent(_n: int, reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    while await reader.read(65536):
        pass


@contextlib.asynccontextmanager
async def client(url: str, timeout: float = 0.5) -> AsyncIterator[RespClient]:
    resp = RespClient(url, timeout=timeout)
    try:
        yield resp
    finally:
        await resp.aclose()


# -- against the real Redis --------------------------------------------------------------------


def test_pipelined_concurrent_gets_come_back_in_order(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    keys = [f"{prefix}k{i}" for i in range(500)]
    sync_redis.mset({key: f"value-{i}" for i, key in enumerate(keys)})

    async def scenario() -> None:
        async with client(redis_target.url) as resp:
            values = await asyncio.gather(*(resp.get(key.encode()) for key in keys))
            assert values == [f"value-{i}".encode() for i in range(500)]
            # Pipelined: a burst of 500 shares a handful of connections, not 500.
            assert 1 <= len(resp._conns) <= MAX_CONNECTIONS
            again = await asyncio.gather(*(resp.get(key.encode()) for key in reversed(keys)))
            assert again == values[::-1]

    asyncio.run(scenario())


def test_nil_binary_and_empty_values(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    binary = bytes(range(256)) + b"\r\n$-1\r\n*2\r\n-ERR\r\n"
    sync_redis.set(f"{prefix}binary", binary)
    sync_redis.set(f"{prefix}empty", b"")

    async def scenario() -> None:
        async with client(redis_target.url) as resp:
            assert await resp.get(f"{prefix}absent".encode()) is None
            assert await resp.get(f"{prefix}binary".encode()) == binary
            assert await resp.get(f"{prefix}empty".encode()) == b""
            # Keys are bytes too: a key with CR LF inside is framed by its length.
            sync_redis.set(f"{prefix}odd\r\nkey".encode(), b"odd")
            assert await resp.get(f"{prefix}odd\r\nkey".encode()) == b"odd"

    asyncio.run(scenario())


def test_other_reply_types(redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
                           ) -> None:
    sync_redis.set(f"{prefix}a", b"1")

    async def scenario() -> None:
        async with client(redis_target.url) as resp:
            assert await resp.execute(b"PING") == b"PONG"
            assert await resp.execute(b"EXISTS", f"{prefix}a".encode(), b"nope") == 1
            assert await resp.execute(b"MGET", f"{prefix}a".encode(), b"nope") == [b"1", None]
            with pytest.raises(ReplyError, match="wrong number of arguments"):
                await resp.execute(b"GET")
            assert await resp.execute(b"PING") == b"PONG"  # still in step after the error

    asyncio.run(scenario())


def test_large_values_split_across_reads(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    big = [bytes([65 + i]) * (1024 * 1024 + i) for i in range(3)]
    for i, value in enumerate(big):
        sync_redis.set(f"{prefix}big{i}", value)
    sync_redis.set(f"{prefix}small", b"s")

    async def scenario() -> None:
        async with client(redis_target.url, timeout=5) as resp:
            calls = []
            for i in range(3):
                calls += [resp.get(f"{prefix}big{i}".encode()), resp.get(f"{prefix}small".encode())]
            values = await asyncio.gather(*calls)
            assert values == [big[0], b"s", big[1], b"s", big[2], b"s"]

    asyncio.run(scenario())


def test_error_reply_is_store_unavailable_and_the_connection_stays_usable(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    sync_redis.rpush(f"{prefix}list", b"x")
    sync_redis.set(f"{prefix}string", b"fine")

    async def scenario() -> None:
        store = RedisStore(redis_target.url, prefix=prefix)
        try:
            assert store._lean is not None
            with pytest.raises(StoreUnavailable) as caught:
                await store.get("list")  # WRONGTYPE
            assert caught.value.reason == "store_error" and caught.value.status == 503
            conns = list(store._lean._conns)
            assert await store.get("string") == b"fine"
            assert store._lean._conns == conns  # the same connection: still in step
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_the_database_in_the_url_is_honoured(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    key = f"{prefix}in-db-3"
    db3 = with_db(redis_target.url, 3)
    with redis.Redis.from_url(db3) as other:
        other.set(key, b"three", ex=60)
    try:
        async def scenario() -> None:
            async with client(db3) as resp:
                assert await resp.get(key.encode()) == b"three"
            async with client(redis_target.url) as resp:
                assert await resp.get(key.encode()) is None

        asyncio.run(scenario())
    finally:
        with redis.Redis.from_url(db3) as other:
            other.delete(key)


def test_user_name_and_password_are_sent(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    user = prefix.replace(":", "-").rstrip("-")
    password = "p@ss:w/rd %"
    try:
        sync_redis.acl_setuser(user, enabled=True, passwords=[f"+{password}"],
                               keys=[f"{prefix}*"], commands=["+get", "+select", "+auth"])
    except redis.ResponseError as exc:
        pytest.skip(f"this Redis refuses ACL SETUSER: {exc}")
    sync_redis.set(f"{prefix}secret", b"granted")
    parts = urlsplit(redis_target.url)
    quoted = password.replace("%", "%25").replace("@", "%40").replace(":", "%3A").replace(
        "/", "%2F").replace(" ", "%20")
    url = urlunsplit(parts._replace(netloc=f"{user}:{quoted}@{parts.hostname}:{parts.port}"))
    wrong = urlunsplit(parts._replace(netloc=f"{user}:nope@{parts.hostname}:{parts.port}"))
    try:
        async def scenario() -> None:
            async with client(url) as resp:
                assert await resp.get(f"{prefix}secret".encode()) == b"granted"
                with pytest.raises(ReplyError, match="NOPERM"):
                    await resp.get(b"elsewhere")
            store = RedisStore(wrong, prefix=prefix)
            try:
                with pytest.raises(StoreUnavailable) as caught:
                    await store.get("secret")
                assert caught.value.reason == "store_unreachable"
            finally:
                await store.aclose()

        asyncio.run(scenario())
    finally:
        sync_redis.acl_deluser(user)


def test_a_connection_redis_killed_is_replaced(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    sync_redis.set(f"{prefix}k", b"v")

    async def scenario() -> None:
        store = RedisStore(redis_target.url, prefix=prefix)
        try:
            lean = store._lean
            assert lean is not None
            for settle in (False, True):
                assert await store.get("k") == b"v"
                client_id = await lean.execute(b"CLIENT", b"ID")
                # Only this connection: other test runs may share this Redis.
                assert sync_redis.client_kill_filter(_id=str(client_id)) == 1
                if settle:
                    await asyncio.sleep(0.05)  # the close is seen before the next GET
                # Otherwise the GET may be written to the dead connection: retried once.
                assert await store.get("k") == b"v"
                assert await lean.execute(b"CLIENT", b"ID") != client_id
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_a_cancelled_caller_does_not_shift_the_replies(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    sync_redis.mset({f"{prefix}a": b"A", f"{prefix}b": b"B", f"{prefix}c": b"C"})

    async def scenario() -> None:
        async with client(redis_target.url) as resp:
            assert await resp.get(f"{prefix}a".encode()) == b"A"  # connected
            first = asyncio.ensure_future(resp.get(f"{prefix}a".encode()))
            await asyncio.sleep(0)  # queued on the connection
            first.cancel()
            assert await resp.get(f"{prefix}b".encode()) == b"B"
            assert await resp.get(f"{prefix}c".encode()) == b"C"
            assert first.cancelled()

    asyncio.run(scenario())


# -- faults, on real sockets -------------------------------------------------------------------


def test_closed_port_is_store_unavailable_at_once() -> None:
    async def scenario() -> None:
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await store.get("k")
            assert caught.value.reason == "store_unreachable"
            assert time.monotonic() - started < 0.5
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_a_silent_server_times_out_without_a_retry() -> None:
    async def scenario() -> None:
        async with FakeRedis(silent) as server:
            store = RedisStore(server.url, timeout=0.2)
            try:
                started = time.monotonic()
                results = await asyncio.gather(*(store.get(f"k{i}") for i in range(20)),
                                               return_exceptions=True)
                elapsed = time.monotonic() - started
                assert all(isinstance(r, StoreUnavailable) for r in results)
                assert {r.reason for r in results if isinstance(r, StoreUnavailable)} == {
                    "store_unreachable"}
                # One tick (timeout / 4) late at most, plus scheduling slack on a busy machine.
                assert 0.2 <= elapsed < 0.8
                assert server.connections == 1  # a timeout is not retried
            finally:
                await store.aclose()

    asyncio.run(scenario())


def test_a_silent_handshake_times_out() -> None:
    async def scenario() -> None:
        async with FakeRedis(silent) as server:
            async with client(f"redis://:pw@127.0.0.1:{server.port}/2", timeout=0.2) as resp:
                started = time.monotonic()
                with pytest.raises(TimeoutError):
                    await resp.get(b"k")
                assert time.monotonic() - started < 0.8

    asyncio.run(scenario())


def test_a_connection_dropped_before_the_reply_is_retried_once() -> None:
    async def first_drops(n: int, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        if n == 1:
            await read_command(reader)  # as when Redis closes an idle connection as we write
            return
        await answer_gets(reader, writer)

    async def scenario() -> None:
        async with FakeRedis(first_drops) as server, client(server.url) as resp:
            assert await resp.get(b"hello") == b"HELLO"
            assert server.connections == 2

    asyncio.run(scenario())


def test_a_server_that_drops_every_connection_fails_every_caller() -> None:
    async def drops(_n: int, reader: asyncio.StreamReader, _writer: asyncio.StreamWriter
                    ) -> None:
        await read_command(reader)

    async def scenario() -> None:
        async with FakeRedis(drops) as server:
            store = RedisStore(server.url, timeout=0.5)
            try:
                started = time.monotonic()
                results = await asyncio.gather(*(store.get(f"k{i}") for i in range(50)),
                                               return_exceptions=True)
                assert all(isinstance(r, StoreUnavailable) for r in results), results
                assert time.monotonic() - started < 0.5
                # Every caller retried once, all of them on the same one fresh connection.
                assert server.connections == 2
            finally:
                await store.aclose()

    asyncio.run(scenario())


def test_replies_cut_into_small_pieces_are_reassembled() -> None:
    async def trickle(_n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        commands = [await read_command(reader) for _ in range(4)]
        keys = [c[1] for c in commands if c is not None]
        stream = b"".join([
            b"$%d\r\n%b\r\n" % (len(keys[0]) * 3, keys[0] * 3),
            b"$-1\r\n",
            b"*3\r\n:42\r\n+OK\r\n$2\r\nhi\r\n",
            b"-ERR nope\r\n",
        ])
        for start in range(0, len(stream), 7):
            writer.write(stream[start:start + 7])
            await writer.drain()
            await asyncio.sleep(0.002)
        await read_command(reader)

    async def scenario() -> None:
        async with FakeRedis(trickle) as server, client(server.url) as resp:
            results = await asyncio.gather(
                resp.get(b"abc"), resp.get(b"x"), resp.execute(b"ANY", b"y"),
                resp.execute(b"ANY", b"z"), return_exceptions=True)
            assert results[:3] == [b"abcabcabc", None, [42, b"OK", b"hi"]]
            assert isinstance(results[3], ReplyError) and str(results[3]) == "ERR nope"

    asyncio.run(scenario())


def test_garbage_from_the_server_fails_closed() -> None:
    async def garbage(_n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        await read_command(reader)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        await read_command(reader)

    async def scenario() -> None:
        async with FakeRedis(garbage) as server:
            store = RedisStore(server.url, timeout=0.5)
            try:
                with pytest.raises(StoreUnavailable):
                    await store.get("k")
            finally:
                await store.aclose()

    asyncio.run(scenario())


def test_unix_socket(tmp_path: Path) -> None:
    async def serve(_n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_gets(reader, writer)

    async def scenario() -> None:
        async with FakeRedis(serve, unix_path=tmp_path / "redis.sock") as server:
            async with client(server.url) as resp:
                assert await resp.get(b"over-unix") == b"OVER-UNIX"

    asyncio.run(scenario())


def test_aclose_fails_callers_in_flight_and_a_later_call_reconnects() -> None:
    async def scenario() -> None:
        async with FakeRedis(silent) as server:
            resp = RespClient(server.url, timeout=5)
            pending = asyncio.ensure_future(resp.get(b"k"))
            await asyncio.sleep(0.05)
            await resp.aclose()
            with pytest.raises(ConnectionError):
                await pending
            assert resp._all == set() and resp._conns == []
        async with FakeRedis(lambda _n, r, w: answer_gets(r, w)) as server:
            resp = RespClient(server.url, timeout=5)
            try:
                assert await resp.get(b"a") == b"A"
                await resp.aclose()
                assert await resp.get(b"b") == b"B"
            finally:
                await resp.aclose()

    asyncio.run(scenario())


# -- URLs --------------------------------------------------------------------------------------


def test_parse_url() -> None:
    assert parse_url("redis://gw:p%40ss@cache.example:6380/2") == Endpoint(
        "cache.example", 6380, None, 2, "gw", "p@ss")
    assert parse_url("redis://:pw@10.0.0.5") == Endpoint("10.0.0.5", 6379, None, 0, None, "pw")
    assert parse_url("redis://localhost?db=4").db == 4
    assert parse_url("unix:///run/redis.sock?db=1") == Endpoint(
        None, 0, "/run/redis.sock", 1, None, None)
    for url in ["rediss://cache.example:6380/0", "redis://h/0?socket_timeout=3",
                "redis://h/zero", "memory://", "unix://"]:
        with pytest.raises(UnsupportedURL) as caught:
            parse_url(url)
        assert "h/" not in str(caught.value)


@pytest.mark.parametrize("url", [
    "redis://gw:p%40ss%3Aw@cache.example:6380/2", "redis://:pw@10.0.0.5", "redis://h/3?db=5",
    "redis://h?db=4", "redis://[::1]:7000/1", "unix:///run/redis%20x.sock?db=1",
    "unix://u:pw@/run/redis.sock",
])
def test_parse_url_reads_urls_as_redis_py_does(url: str) -> None:
    """Both clients of one store must reach the same server and database as the same user."""
    theirs = redis_parse_url(url)
    ours = parse_url(url)
    assert ours.host == theirs.get("host", None if ours.path else "localhost")
    assert ours.port == theirs.get("port", 0 if ours.path else 6379)
    assert ours.path == theirs.get("path")
    assert ours.db == int(theirs.get("db", 0))
    assert (ours.username, ours.password) == (theirs.get("username"), theirs.get("password"))


def test_a_url_the_lean_client_cannot_serve_keeps_redis_py() -> None:
    async def scenario() -> None:
        store = RedisStore("rediss://gw:pw@cache.example:6380/2")
        try:
            assert store._lean is None
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_the_password_never_appears_in_an_error() -> None:
    async def scenario() -> None:
        async with client(f"redis://gw:s3cret-pw@127.0.0.1:{free_port()}/3") as resp:
            with pytest.raises(ConnectionError) as caught:
                await resp.get(b"k")
            assert "s3cret" not in repr(caught.value)
            assert "s3cret" not in repr(caught.value.__cause__)

    asyncio.run(scenario())
