"""The Redis store's own promises beyond the shared contract: prefix, replicas, outages."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from gateway.errors import StoreUnavailable
from gateway.stores.base import Store
from gateway.stores.redis import RedisStore, describe_url
from tests.support.procs import free_port
from tests.support.redis import RedisTarget, connect_or_skip


def test_keys_live_under_the_prefix_with_native_ttls(redis_target: RedisTarget) -> None:
    prefix = redis_target.fresh_prefix()

    async def scenario() -> None:
        store = RedisStore(redis_target.url, prefix=prefix)
        try:
            await store.set("sess:abc", b"v", ttl=30)
            await store.incr("otp:att:1", ttl=30)
            await store.sadd("link:sess:u", "sess:abc")
        finally:
            await store.aclose()

    asyncio.run(scenario())
    assert sorted(redis_target.keys(prefix)) == [
        f"{prefix}link:sess:u", f"{prefix}otp:att:1", f"{prefix}sess:abc"]
    with redis.Redis.from_url(redis_target.url) as client:
        # The counter got its expiry from the script that created it, in milliseconds.
        assert 29_000 < client.pttl(f"{prefix}otp:att:1") <= 30_000
        assert client.pttl(f"{prefix}link:sess:u") == -1


def test_two_replicas_share_counters_and_single_use(redis_target: RedisTarget) -> None:
    """Two stores with their own pools, as two gateway processes have: the guarantees hold."""
    prefix = redis_target.fresh_prefix()

    async def scenario() -> None:
        a = RedisStore(redis_target.url, prefix=prefix)
        b = RedisStore(redis_target.url, prefix=prefix)
        try:
            counts = await asyncio.gather(*(s.incr("c", ttl=10) for s in [a, b] * 100))
            assert sorted(counts) == list(range(1, 201))
            await a.set("challenge", b"x", ttl=10)
            taken = await asyncio.gather(*(s.take("challenge") for s in [a, b] * 25))
            assert [t for t in taken if t is not None] == [b"x"]
            added = await asyncio.gather(*(s.add("cooldown", b"1", ttl=10) for s in [a, b] * 25))
            assert added.count(True) == 1
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(scenario())


async def _every_operation(store: Store) -> list[str]:
    calls = [
        store.get("k"), store.set("k", b"v"), store.set("k", b"v", ttl=1), store.add("k", b"v"),
        store.delete("k"), store.take("k"), store.incr("c", ttl=1), store.ttl("k"),
        store.sadd("s", "m"), store.smembers("s"), store.srem("s", "m"), store.ping(),
    ]
    reasons = []
    for call in calls:
        with pytest.raises(StoreUnavailable) as caught:
            await call
        assert caught.value.status == 503 and caught.value.headers["Retry-After"]
        reasons.append(caught.value.reason)
    return reasons


def test_closed_port_raises_store_unavailable_fast() -> None:
    port = free_port()

    async def scenario() -> None:
        store = RedisStore(f"redis://127.0.0.1:{port}/0")
        try:
            started = time.monotonic()
            reasons = await _every_operation(store)
            assert set(reasons) == {"store_unreachable"}
            # Connection refused is answered at once (one immediate retry, no backoff).
            assert time.monotonic() - started < 2
        finally:
            await store.aclose()

    asyncio.run(scenario())


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    server = socket.create_server(("127.0.0.1", 0))
    port: int = server.getsockname()[1]
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stopping.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield port
    stopping.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_hung_server_times_out_into_store_unavailable(silent_server: int) -> None:
    async def scenario() -> None:
        store = RedisStore(f"redis://127.0.0.1:{silent_server}/0", timeout=0.2)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.get("k")
            # 0.2 s per try, one retry: well under a second instead of hanging.
            assert time.monotonic() - started < 1.5
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_outage_is_logged_once_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"redis://gateway:s3cret-pw@127.0.0.1:{port}/3"

    async def scenario() -> None:
        store = RedisStore(url)
        try:
            for _ in range(3):
                with pytest.raises(StoreUnavailable):
                    await store.get("k")
        finally:
            await store.aclose()

    with caplog.at_level(logging.WARNING, logger="gateway.store"):
        asyncio.run(scenario())
    records = [r for r in caplog.records if r.name == "gateway.store"]
    assert [r.getMessage() for r in records] == ["session store unreachable"]
    event = records[0].event  # type: ignore[attr-defined]
    assert event == {"store": f"redis://127.0.0.1:{port}/3", "reason": "ConnectionError"}
    assert "s3cret" not in caplog.text


def test_describe_url_drops_credentials_and_options() -> None:
    assert describe_url("rediss://user:pw@cache.example:6380/2?ssl_cert_reqs=none") == (
        "rediss://cache.example:6380/2")
    assert describe_url("redis://:pw@10.0.0.5") == "redis://10.0.0.5:6379/0"


def test_rediss_url_with_password_configures_tls_and_auth() -> None:
    async def scenario() -> None:
        store = RedisStore("rediss://gw:pa%40ss@cache.example:6380/2")
        try:
            pool = store._redis.connection_pool
            kwargs = pool.connection_kwargs
            assert pool.connection_class.__name__ == "SSLConnection"
            assert (kwargs["username"], kwargs["password"]) == ("gw", "pa@ss")
            assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6380, 2)
            assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.5
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_recovery_is_logged(redis_target: RedisTarget, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        store = RedisStore(redis_target.url, prefix=redis_target.fresh_prefix())
        try:
            store._down = True  # as after a failed call
            await store.ping()
        finally:
            await store.aclose()

    with caplog.at_level(logging.WARNING, logger="gateway.store"):
        asyncio.run(scenario())
    assert "session store reachable again" in caplog.text


def test_without_redis_the_tests_skip_or_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TEST_REDIS_URL", f"redis://127.0.0.1:{free_port()}/15")
    monkeypatch.delenv("GATEWAY_TEST_REQUIRE_REDIS", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"no Redis answers at redis://127\.0\.0\.1:"):
        connect_or_skip()
    monkeypatch.setenv("GATEWAY_TEST_REQUIRE_REDIS", "1")
    with pytest.raises(pytest.fail.Exception, match="GATEWAY_TEST_REQUIRE_REDIS=1"):
        connect_or_skip()
