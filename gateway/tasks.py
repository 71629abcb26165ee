"""Background tasks the gateway owns (log flusher, policy watcher, pool sweeper, JWKS fetch)."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and return once it has finished.

    ``asyncio.wait`` neither raises the task's CancelledError nor swallows the caller's own
    cancellation, which ``try: await task except CancelledError`` would do.
    """
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
