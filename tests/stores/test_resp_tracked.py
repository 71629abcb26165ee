"""Client-side caching for the WebSocket re-check: a local copy that Redis keeps true.

Against the real Redis for what Redis does (tracking, invalidation on DEL, SET, expiry, a
killed connection) and a :class:`FakeRedis` on a real socket for what it cannot be asked to do
(an invalidation in the same read as the reply it invalidates, a server that goes silent).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from gateway.errors import StoreUnavailable
from gateway.stores.redis import RedisStore
from gateway.stores.resp_tracked import TrackedClient
from tests.stores.test_resp_client import (
    FakeRedis,
    Handler,
    prefix,
    read_command,
    sync_redis,
)
from tests.support.procs import free_port
from tests.support.redis import RedisTarget

__all__ = ["prefix", "sync_redis"]  # fixtures, imported to be found by pytest

HELLO_REPLY = b"%1\r\n$5\r\nproto\r\n:3\r\n"


@contextlib.asynccontextmanager
async def tracked(url: str, timeout: float = 0.5) -> AsyncIterator[TrackedClient]:
    client = TrackedClient(url, timeout=timeout)
    try:
        yield client
    finally:
        await client.aclose()


async def barrier(client: TrackedClient) -> None:
    """A PING on the tracking connection: every push Redis queued before it has been read."""
    assert await client.execute(b"PING") == b"PONG"


def test_a_value_read_once_is_then_answered_locally(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    key = f"{prefix}sess".encode()
    sync_redis.set(key, b"record-1")

    async def scenario() -> None:
        async with tracked(redis_target.url) as client:
            assert await client.get_cached(key) == b"record-1"
            for _ in range(10):
                assert await client.get_cached(key) == b"record-1"
            assert (client.misses, client.hits) == (1, 10)
            # Redis, not the client, decides that the copy is worth keeping: it tracks the key.
            info = await client.execute(b"CLIENT", b"TRACKINGINFO")
            assert isinstance(info, list) and b"on" in info[1]  # type: ignore[operator]

    asyncio.run(scenario())


def test_a_delete_or_a_change_by_another_client_reaches_the_copy(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    key = f"{prefix}sess".encode()
    other = f"{prefix}other".encode()
    sync_redis.mset({key: b"record-1", other: b"kept"})

    async def scenario() -> None:
        async with tracked(redis_target.url) as client:
            assert await client.get_cached(key) == b"record-1"
            assert await client.get_cached(other) == b"kept"
            sync_redis.set(key, b"record-2")  # another replica touches the session
            await barrier(client)
            assert await client.get_cached(key) == b"record-2"
            sync_redis.delete(key)  # another replica logs the user out
            await barrier(client)
            assert await client.get_cached(key) is None
            # Only that key was dropped.
            hits = client.hits
            assert await client.get_cached(other) == b"kept" and client.hits == hits + 1

    asyncio.run(scenario())


def test_an_expiry_in_redis_reaches_the_copy(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    key = f"{prefix}sess".encode()
    sync_redis.set(key, b"short", px=150)

    async def scenario() -> None:
        async with tracked(redis_target.url) as client:
            assert await client.get_cached(key) == b"short"
            deadline = time.monotonic() + 2
            while client.cached() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert await client.get_cached(key) is None

    asyncio.run(scenario())


def test_a_lost_connection_drops_every_copy(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    key = f"{prefix}sess".encode()
    sync_redis.set(key, b"record-1")

    async def scenario() -> None:
        async with tracked(redis_target.url) as client:
            assert await client.get_cached(key) == b"record-1"
            client_id = await client.execute(b"CLIENT", b"ID")
            assert isinstance(client_id, int)
            sync_redis.client_kill_filter(_id=client_id)
            deadline = time.monotonic() + 2
            while client.cached() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert client.cached() == 0
            # Changed while no connection could tell us: read afresh, on a new connection.
            sync_redis.set(key, b"record-2")
            assert await client.get_cached(key) == b"record-2"
            sync_redis.delete(key)
            await barrier(client)  # the new connection tracks the key again
            assert await client.get_cached(key) is None

    asyncio.run(scenario())


def test_user_name_and_password_go_into_hello(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    user = prefix.replace(":", "-").rstrip("-")
    try:
        sync_redis.acl_setuser(user, enabled=True, passwords=["+s3cret"], keys=[f"{prefix}*"],
                               commands=["+get", "+select", "+hello", "+client|tracking",
                                         "+ping"])
    except redis.ResponseError as exc:
        pytest.skip(f"this Redis refuses ACL SETUSER: {exc}")
    sync_redis.set(f"{prefix}sess", b"granted")
    parts = urlsplit(redis_target.url)
    url = urlunsplit(parts._replace(netloc=f"{user}:s3cret@{parts.hostname}:{parts.port}"))
    wrong = urlunsplit(parts._replace(netloc=f"{user}:nope@{parts.hostname}:{parts.port}"))
    try:
        async def scenario() -> None:
            async with tracked(url) as client:
                assert await client.get_cached(f"{prefix}sess".encode()) == b"granted"
                assert await client.get_cached(f"{prefix}sess".encode()) == b"granted"
                assert client.hits == 1
            async with tracked(wrong) as client:
                with pytest.raises(ConnectionError, match="WRONGPASS") as caught:
                    await client.get_cached(f"{prefix}sess".encode())
                assert "nope" not in str(caught.value)

        asyncio.run(scenario())
    finally:
        sync_redis.acl_deluser(user)


def test_absent_keys_are_never_cached(
    redis_target: RedisTarget, prefix: str, sync_redis: redis.Redis
) -> None:
    async def scenario() -> None:
        async with tracked(redis_target.url) as client:
            for n in range(20):
                assert await client.get_cached(f"{prefix}made-up-{n}".encode()) is None
            assert client.cached() == 0 and client.misses == 20

    asyncio.run(scenario())


def test_an_invalidation_read_with_its_reply_is_not_undone() -> None:
    """The push right behind the GET reply is applied before the caller resumes: no copy."""

    async def serve(_n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                    ) -> None:
        while (command := await read_command(reader)) is not None:
            if command[0] == b"HELLO":
                writer.write(HELLO_REPLY)
            elif command[0] == b"GET":
                key = command[1]
                writer.write(b"$5\r\nstale\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$%d\r\n%b\r\n"
                             % (len(key), key))
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()

    async def scenario() -> None:
        async with FakeRedis(serve) as fake, tracked(fake.url) as client:
            assert await client.get_cached(b"k") == b"stale"
            assert client.cached() == 0
            assert await client.get_cached(b"k") == b"stale"
            assert client.hits == 0

    asyncio.run(scenario())


def until_silenced(silence: asyncio.Event) -> Handler:
    """A Redis that answers HELLO, GET (``record``), PING and the rest until ``silence``, then
    reads every command and answers none (a partition, a stalled server)."""

    async def serve(_n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                    ) -> None:
        while (command := await read_command(reader)) is not None:
            if silence.is_set():
                continue
            if command[0] == b"HELLO":
                writer.write(HELLO_REPLY)
            elif command[0] == b"GET":
                writer.write(b"$6\r\nrecord\r\n")
            else:
                writer.write(b"+PONG\r\n" if command[0] == b"PING" else b"+OK\r\n")
            await writer.drain()

    return serve


def test_a_silent_redis_is_not_trusted_beyond_the_timeout() -> None:
    """A link that stops answering (a partition) must not keep a logged-out session alive."""
    silence = asyncio.Event()
    serve = until_silenced(silence)

    async def scenario() -> None:
        async with FakeRedis(serve) as fake, tracked(fake.url, timeout=0.2) as client:
            assert await client.get_cached(b"k") == b"record"
            # Quiet but healthy: the sweeper's PINGs keep the copy trusted.
            await asyncio.sleep(0.5)
            assert await client.get_cached(b"k") == b"record"
            assert client.hits == 1
            silence.set()
            await asyncio.sleep(0.35)
            started = time.monotonic()
            with pytest.raises(OSError):
                await client.get_cached(b"k")
            assert time.monotonic() - started < 1.0
            assert client.cached() == 0

    asyncio.run(scenario())


def test_without_news_from_redis_the_copy_is_not_trusted() -> None:
    """Trust needs Redis heard from within the timeout, whether or not the sweeper runs."""
    silence = asyncio.Event()
    serve = until_silenced(silence)

    async def scenario() -> None:
        async with FakeRedis(serve) as fake, tracked(fake.url, timeout=0.2) as client:
            assert await client.get_cached(b"k") == b"record"
            # The heartbeat dies (no PINGs, no timeouts): only the trust window is left.
            sweeper = client._sweeper
            assert sweeper is not None
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            silence.set()
            await asyncio.sleep(0.25)
            # Not the copy: a GET to a Redis that never answers, so the caller waits.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.get_cached(b"k"), 0.3)
            assert client.hits == 0

    asyncio.run(scenario())


def test_store_get_cached_follows_deletes_through_another_store(
    redis_target: RedisTarget, prefix: str
) -> None:
    async def scenario() -> None:
        replica_a = RedisStore(redis_target.url, prefix=prefix)
        replica_b = RedisStore(redis_target.url, prefix=prefix)
        try:
            await replica_a.set("sess:x", b"record", ttl=60)
            assert await replica_b.get_cached("sess:x") == b"record"
            assert await replica_b.get_cached("sess:x") == b"record"
            assert replica_b._tracked is not None and replica_b._tracked.hits == 1
            assert await replica_a.delete("sess:x")
            assert replica_b._tracked is not None
            await barrier(replica_b._tracked)
            assert await replica_b.get_cached("sess:x") is None
        finally:
            await replica_a.aclose()
            await replica_b.aclose()

    asyncio.run(scenario())


def test_store_get_cached_without_redis_is_unavailable_not_absent() -> None:
    async def scenario() -> None:
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
        try:
            with pytest.raises(StoreUnavailable):
                await store.get_cached("sess:x")
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_store_without_the_cache_reads_redis_every_time(
    redis_target: RedisTarget, prefix: str
) -> None:
    async def scenario() -> None:
        store = RedisStore(redis_target.url, prefix=prefix, websocket_cache=False)
        try:
            await store.set("sess:y", b"record", ttl=60)
            assert await store.get_cached("sess:y") == b"record"
            assert store._tracked is None
        finally:
            await store.aclose()

    asyncio.run(scenario())
