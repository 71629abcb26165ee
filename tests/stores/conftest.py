"""Store factories for the contract suite: every backend runs the same tests.

A backend is one entry in ``BACKENDS``: a generator that takes the test's request (for the
fixtures it needs), yields a :class:`StoreFactory` and cleans up after the test. ``advance``
moves time: the memory store moves a fake clock, and Redis (real time, native TTLs) sleeps,
which is why the suite only ever moves time by about a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest

from gateway.stores.base import Store
from gateway.stores.memory import MemoryStore
from gateway.stores.redis import RedisStore
from tests.support.clock import FakeClock as SharedClock
from tests.support.redis import RedisTarget

Advance = Callable[[float], Awaitable[None]]
Scenario = Callable[[Store], Awaitable[None]]


class FakeClock(SharedClock):
    def __init__(self, now: float = 1_000.0) -> None:
        super().__init__(now)

@dataclass(frozen=True)
class StoreFactory:
    name: str
    make: Callable[[], Store]
    advance: Advance
    # True when ``advance`` is free (a fake clock), so a test may jump a year.
    fake_clock: bool

    def __call__(self) -> Store:
        return self.make()


def _memory(_request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    clock = FakeClock()

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    yield StoreFactory("memory", lambda: MemoryStore(clock=clock), advance, fake_clock=True)


def _redis(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    # Skips (or fails, in CI) when no Redis answers; each test gets a prefix of its own.
    target: RedisTarget = request.getfixturevalue("redis_target")
    prefix = target.fresh_prefix("store")

    async def advance(seconds: float) -> None:
        await asyncio.sleep(seconds)

    yield StoreFactory("redis", lambda: RedisStore(target.url, prefix=prefix), advance,
                       fake_clock=False)
    target.delete_prefix(prefix)


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Iterator[StoreFactory]]] = {
    "memory": _memory,
    "redis": _redis,
}


@pytest.fixture(params=list(BACKENDS))
def store_factory(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    yield from BACKENDS[request.param](request)


@pytest.fixture
def advance(store_factory: StoreFactory) -> Advance:
    return store_factory.advance


@pytest.fixture
def run_store(store_factory: StoreFactory) -> Callable[[Scenario], None]:
    """Run an async scenario against a fresh store in its own event loop, then close it."""

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            store = store_factory()
            try:
                await scenario(store)
            finally:
                await store.aclose()

        asyncio.run(main())

    return run
