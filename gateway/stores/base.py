"""The one Store contract every backend (memory, Redis) implements with the same guarantees.

Values are bytes; keys are strings chosen by the gateway (never raw cookie values: callers
hash session ids before using them as keys, so a dump of the store holds no usable cookie).
Every operation is atomic on its own. The two that the OTP rules rely on under concurrency are
``incr`` (an attempt counter: N parallel callers see N distinct values) and ``take`` (single
use: of N parallel callers exactly one gets the value). A backend that cannot reach its server
raises :class:`gateway.errors.StoreUnavailable` — never returns "absent", which would fail open.

``clock`` is injectable so that tests can move time (TTL + 1 s) without sleeping.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Protocol

Clock = Callable[[], float]


def check_value(value: object) -> bytes:
    """The value itself, or TypeError: a str would be encoded differently by each backend."""
    if not isinstance(value, bytes):
        raise TypeError(f"store values must be bytes, not {type(value).__name__}")
    return value


def check_ttl(ttl: float | None) -> None:
    """ValueError unless ``ttl`` is None or positive.

    Redis refuses a zero or negative expiry, and a silent "already expired" would hide bugs, so
    every backend refuses it the same way before it reaches its server.
    """
    if ttl is not None and not ttl > 0:
        raise ValueError("ttl must be a positive number of seconds or None")


class Store(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def get_cached(self, key: str) -> bytes | None:
        """Like ``get``, but may answer from a local copy the backend keeps current.

        For lookups repeated many times a second on the same key (a WebSocket's per-message
        re-check). A backend without such a copy answers as ``get`` does; the Redis store's
        copy is dropped by Redis's own invalidation messages (gateway.stores.resp_tracked).
        """

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value``; ``ttl`` in seconds (None = no expiry, for durable records)."""

    async def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store only if absent (SET NX); True if this call stored it."""

    async def delete(self, key: str) -> bool:
        """Remove; True if something was removed."""

    async def take(self, key: str) -> bytes | None:
        """Atomically get and delete: of concurrent callers exactly one gets the value."""

    async def incr(self, key: str, ttl: float) -> int:
        """Atomically add 1 and return the new value; a new counter expires after ``ttl``."""

    async def ttl(self, key: str) -> float | None:
        """Seconds until expiry; None when absent or without expiry."""

    async def sadd(self, key: str, member: str) -> None:
        """Add to a durable set (links for GDPR: user id ↔ anonymous ids ↔ sessions)."""

    async def smembers(self, key: str) -> builtins.set[str]:
        """The set's members (empty when absent)."""

    async def srem(self, key: str, member: str) -> None:
        """Remove one member of a set."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the backend cannot serve requests."""

    async def aclose(self) -> None:
        """Release connections."""
