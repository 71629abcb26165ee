"""The Store contract, run against every backend in ``conftest.BACKENDS``.

Time moves through ``advance`` by small amounts (ttl=1, advance 1.1) so that a real-time
backend can implement it by sleeping; only a fake clock is asked to jump a year.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.errors import StoreUnavailable
from gateway.stores.base import Store
from gateway.stores.memory import MemoryStore
from tests.stores.conftest import Advance, FakeClock, Scenario, StoreFactory

Run = Callable[[Scenario], None]
YEAR = 365 * 24 * 3600.0


def test_get_absent_is_none(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        assert await store.get("absent") is None
        assert await store.ttl("absent") is None

    run_store(scenario)


def test_set_get_and_expiry(run_store: Run, advance: Advance) -> None:
    async def scenario(store: Store) -> None:
        await store.set("k", b"v", ttl=1)
        assert await store.get("k") == b"v"
        remaining = await store.ttl("k")
        assert remaining is not None and 0 < remaining <= 1
        await advance(1.1)
        assert await store.get("k") is None
        assert await store.ttl("k") is None

    run_store(scenario)


def test_set_overwrites_value_and_expiry(run_store: Run, advance: Advance) -> None:
    async def scenario(store: Store) -> None:
        await store.set("k", b"old", ttl=1)
        await store.set("k", b"new")
        assert await store.ttl("k") is None
        await advance(1.1)
        assert await store.get("k") == b"new"
        await store.set("k", b"short", ttl=1)
        await advance(1.1)
        assert await store.get("k") is None

    run_store(scenario)


@pytest.mark.parametrize("value", ["text", 42, None, bytearray(b"x")])
def test_values_must_be_bytes(run_store: Run, value: object) -> None:
    async def scenario(store: Store) -> None:
        with pytest.raises(TypeError):
            await store.set("k", value)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await store.add("k", value)  # type: ignore[arg-type]
        assert await store.get("k") is None

    run_store(scenario)


def test_add_is_set_if_absent(run_store: Run, advance: Advance) -> None:
    async def scenario(store: Store) -> None:
        assert await store.add("k", b"first", ttl=1) is True
        assert await store.add("k", b"second", ttl=1) is False
        assert await store.get("k") == b"first"
        await advance(1.1)
        assert await store.add("k", b"third", ttl=1) is True
        assert await store.get("k") == b"third"

    run_store(scenario)


def test_concurrent_add_has_one_winner(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        results = await asyncio.gather(*(store.add("k", b"%d" % i, ttl=5) for i in range(50)))
        assert results.count(True) == 1

    run_store(scenario)


def test_delete(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        await store.set("k", b"v", ttl=5)
        assert await store.delete("k") is True
        assert await store.get("k") is None
        assert await store.delete("k") is False
        await store.set("durable", b"v")
        assert await store.delete("durable") is True
        assert await store.get("durable") is None

    run_store(scenario)


def test_take_gets_and_deletes(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        await store.set("k", b"v", ttl=5)
        assert await store.take("k") == b"v"
        assert await store.take("k") is None
        assert await store.get("k") is None

    run_store(scenario)


def test_take_of_expired_is_none(run_store: Run, advance: Advance) -> None:
    async def scenario(store: Store) -> None:
        await store.set("k", b"v", ttl=1)
        await advance(1.1)
        assert await store.take("k") is None

    run_store(scenario)


def test_incr_creates_with_ttl_and_counts(run_store: Run, advance: Advance) -> None:
    async def scenario(store: Store) -> None:
        assert await store.incr("c", ttl=1) == 1
        remaining = await store.ttl("c")
        assert remaining is not None and 0 < remaining <= 1
        assert await store.incr("c", ttl=1) == 2
        assert await store.incr("c", ttl=1) == 3
        assert await store.get("c") == b"3"
        await advance(1.1)
        assert await store.get("c") is None
        assert await store.incr("c", ttl=1) == 1

    run_store(scenario)


def test_incr_does_not_extend_the_window(run_store: Run, advance: Advance) -> None:
    async def scenario(store: Store) -> None:
        assert await store.incr("c", ttl=1) == 1
        await advance(0.6)
        assert await store.incr("c", ttl=1) == 2
        await advance(0.5)
        assert await store.get("c") is None

    run_store(scenario)


def test_concurrent_incr_counts_each_caller_once(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        values = await asyncio.gather(*(store.incr("c", ttl=5) for _ in range(200)))
        assert sorted(values) == list(range(1, 201))

    run_store(scenario)


def test_concurrent_take_has_one_winner(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        await store.set("k", b"v", ttl=5)
        results = await asyncio.gather(*(store.take("k") for _ in range(50)))
        assert [r for r in results if r is not None] == [b"v"]

    run_store(scenario)


def test_sets(run_store: Run, advance: Advance) -> None:
    async def scenario(store: Store) -> None:
        assert await store.smembers("s") == set()
        await store.sadd("s", "a")
        await store.sadd("s", "b")
        await store.sadd("s", "a")
        assert await store.smembers("s") == {"a", "b"}
        await store.srem("s", "a")
        await store.srem("s", "missing")
        await advance(1.1)
        assert await store.smembers("s") == {"b"}
        await store.srem("s", "b")
        assert await store.smembers("s") == set()
        await store.srem("never-created", "x")

    run_store(scenario)


def test_smembers_returns_a_copy(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        await store.sadd("s", "a")
        members = await store.smembers("s")
        members.add("intruder")
        assert await store.smembers("s") == {"a"}

    run_store(scenario)


def test_durable_value_has_no_expiry(
    run_store: Run, advance: Advance, store_factory: StoreFactory
) -> None:
    async def scenario(store: Store) -> None:
        await store.set("d", b"v")
        assert await store.ttl("d") is None
        await advance(1.1)
        assert await store.get("d") == b"v"
        if store_factory.fake_clock:
            await advance(YEAR)
            assert await store.get("d") == b"v"
            assert await store.ttl("d") is None

    run_store(scenario)


def test_ping_and_aclose(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        await store.ping()

    run_store(scenario)


# The memory store's own promises, beyond the shared contract.


def test_full_memory_store_refuses_new_keys_instead_of_evicting_live_ones() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        store = MemoryStore(maxsize=3, clock=clock)
        await store.set("durable", b"d")
        await store.sadd("links", "anon-1")
        for i in range(3):
            await store.set(f"k{i}", b"v", ttl=60)
        with pytest.raises(StoreUnavailable):
            await store.set("k3", b"v", ttl=60)
        with pytest.raises(StoreUnavailable):
            await store.incr("counter", ttl=60)
        # Live keys, counters, durable values and sets all survived the flood.
        assert [await store.get(f"k{i}") for i in range(3)] == [b"v", b"v", b"v"]
        assert await store.get("durable") == b"d"
        assert await store.smembers("links") == {"anon-1"}
        await store.set("k0", b"updated", ttl=60)  # existing keys can still be written
        clock.advance(61)  # once entries expire they make room again
        await store.set("k3", b"v", ttl=60)
        assert await store.get("k3") == b"v"

    asyncio.run(scenario())


def test_memory_rejects_non_positive_ttl() -> None:
    async def scenario() -> None:
        store = MemoryStore(clock=FakeClock())
        with pytest.raises(ValueError):
            await store.set("k", b"v", ttl=0)
        with pytest.raises(ValueError):
            await store.incr("c", ttl=-1)

    asyncio.run(scenario())


def test_memory_incr_on_text_value_fails() -> None:
    async def scenario() -> None:
        store = MemoryStore(clock=FakeClock())
        await store.set("k", b"not a number", ttl=5)
        with pytest.raises(ValueError):
            await store.incr("k", ttl=5)

    asyncio.run(scenario())


# Caller errors are refused alike by every backend, before anything reaches a server.


def test_incr_on_text_value_fails(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        await store.set("k", b"not a number", ttl=5)
        with pytest.raises(ValueError):
            await store.incr("k", ttl=5)
        assert await store.get("k") == b"not a number"

    run_store(scenario)


def test_non_positive_ttl_is_refused(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        for ttl in (0, -1):
            with pytest.raises(ValueError):
                await store.set("k", b"v", ttl=ttl)
            with pytest.raises(ValueError):
                await store.add("k", b"v", ttl=ttl)
            with pytest.raises(ValueError):
                await store.incr("c", ttl=ttl)
        assert await store.get("k") is None and await store.get("c") is None

    run_store(scenario)


def test_fractional_ttl_is_kept(run_store: Run, advance: Advance) -> None:
    async def scenario(store: Store) -> None:
        await store.set("k", b"v", ttl=0.3)
        remaining = await store.ttl("k")
        assert remaining is not None and 0 < remaining <= 0.3
        await advance(0.4)
        assert await store.get("k") is None

    run_store(scenario)
