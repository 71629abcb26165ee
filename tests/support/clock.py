"""A clock tests move by hand, so TTLs, idle timeouts and elevations expire without sleeping."""

from __future__ import annotations

import time


class FakeClock:
    """Callable like ``time.time``; ``advance`` moves it. Starts at ``now`` (default: real time)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
