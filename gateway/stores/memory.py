"""The in-process Store: the default for one worker, the demo and the tests.

Values that expire live in a ``cachetools.TLRUCache`` whose time-to-use is read from each entry,
so every key carries its own TTL and the injected clock (a fake one in tests) decides when it is
gone. The cache is bounded by ``maxsize``, and a full cache refuses new keys with
``StoreUnavailable`` (503) instead of evicting live ones: evicting would log users out and,
worse, reset rate-limit and OTP counters, so a flood of anonymous visitors could buy fresh
attempts. Expired entries are purged first. Durable values
(``ttl=None``) and sets are records, not cache entries (the GDPR links between user ids,
anonymous ids and sessions): they live in plain dicts and are never evicted silently.

Atomicity: the event loop runs one coroutine at a time, and no method below awaits anything
between reading and writing its keys. Each operation therefore runs to completion without
interleaving, which gives ``incr`` and ``take`` the guarantees the Store contract asks for
without a lock. Keep it that way: an ``await`` inside a method would break them.
"""

from __future__ import annotations

import builtins
import time
from typing import NamedTuple

from cachetools import TLRUCache

from gateway.errors import StoreUnavailable
from gateway.stores.base import Clock, check_ttl, check_value


class _Entry(NamedTuple):
    value: bytes
    expires: float  # on the store's clock


def _time_to_use(_key: str, entry: _Entry, _now: float) -> float:
    # The expiry is fixed when the value is written, so the cache only has to read it back.
    return entry.expires


def _counter(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("incr on a value that is not an integer") from None


class MemoryStore:
    """A Store kept in this process's memory; see the module docstring for its guarantees."""

    def __init__(self, *, maxsize: int = 100_000, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._expiring: TLRUCache[str, _Entry, float] = TLRUCache(maxsize, _time_to_use, clock)
        self._durable: dict[str, bytes] = {}
        self._sets: dict[str, set[str]] = {}

    async def get(self, key: str) -> bytes | None:
        entry = self._expiring.get(key)
        if entry is not None:
            return entry.value
        return self._durable.get(key)

    # The store is the process's own memory: there is no copy to keep, get is already local.
    get_cached = get

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._put(key, check_value(value), ttl)

    async def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        value = check_value(value)
        check_ttl(ttl)
        if key in self._expiring or key in self._durable:
            return False
        self._put(key, value, ttl)
        return True

    async def delete(self, key: str) -> bool:
        removed = self._expiring.pop(key, None) is not None
        removed = self._durable.pop(key, None) is not None or removed
        return self._sets.pop(key, None) is not None or removed

    async def take(self, key: str) -> bytes | None:
        entry = self._expiring.pop(key, None)
        if entry is not None:
            return entry.value
        return self._durable.pop(key, None)

    async def incr(self, key: str, ttl: float) -> int:
        check_ttl(ttl)
        entry = self._expiring.get(key)
        if entry is not None:
            # Like Redis INCR, counting does not move an existing counter's expiry.
            count = _counter(entry.value) + 1
            self._expiring[key] = _Entry(str(count).encode(), entry.expires)
        elif key in self._durable:
            count = _counter(self._durable[key]) + 1
            self._durable[key] = str(count).encode()
        else:
            count = 1
            self._make_room(key)
            self._expiring[key] = _Entry(b"1", self._clock() + ttl)
        return count

    async def ttl(self, key: str) -> float | None:
        entry = self._expiring.get(key)
        if entry is None:
            return None
        return max(0.0, entry.expires - self._clock())

    async def sadd(self, key: str, member: str) -> None:
        self._sets.setdefault(key, set()).add(member)

    async def smembers(self, key: str) -> builtins.set[str]:
        # ``builtins``: inside this class, a bare ``set`` names the method above.
        # A copy: callers must not be able to change the stored set behind the store's back.
        return set(self._sets.get(key, ()))

    async def srem(self, key: str, member: str) -> None:
        members = self._sets.get(key)
        if members is None:
            return
        members.discard(member)
        if not members:
            # An empty set is absent, as in Redis, so the dict does not fill with empty shells.
            del self._sets[key]

    async def ping(self) -> None:
        # Memory is always reachable; the method exists so /readyz treats every store alike.
        return None

    async def aclose(self) -> None:
        # There is no connection to release; the data stays so a late caller still sees it.
        return None

    def _put(self, key: str, value: bytes, ttl: float | None) -> None:
        check_ttl(ttl)
        if ttl is None:
            self._expiring.pop(key, None)
            self._durable[key] = value
        else:
            self._durable.pop(key, None)
            self._make_room(key)
            self._expiring[key] = _Entry(value, self._clock() + ttl)

    def _make_room(self, key: str) -> None:
        cache = self._expiring
        if key in cache or len(cache) < cache.maxsize:
            return
        cache.expire()
        if len(cache) >= cache.maxsize:
            raise StoreUnavailable("The in-memory store is full; retry later.",
                                   reason="memory_store_full")
