"""Hot reload of the policy directory: polled twice a second, and at once on ``SIGHUP``.

Polling (names, mtimes and sizes of the policy files) instead of inotify: it works the same on
every filesystem, including the symlink swaps of Kubernetes ConfigMap volumes, and costs a few
``stat`` calls per poll. A change is applied once two polls in a row see the same files, so
a file caught half-written (an editor truncates, then writes) is not loaded as it stands: an
empty file is a valid, empty policy set and would deny everything until the next poll.
Detection to swap is 0.5-1 s (plus the load itself), inside the 2 s the gateway promises.

A new set replaces the old one with a single attribute assignment on the event loop, so a
request in flight keeps the rule it matched; an invalid set is refused whole, every error is
logged, and the last good set stays active.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

from gateway.errors import PolicyLoadError
from gateway.metrics import Metrics
from gateway.policy.loader import load_policies
from gateway.policy.messages import SUFFIXES
from gateway.policy.model import PolicySet
from gateway.tasks import cancel_and_wait

POLL_INTERVAL: Final = 0.5
log = logging.getLogger("gateway.policy")

Snapshot = tuple[tuple[str, int, int], ...] | None


def snapshot(directory: str | Path) -> Snapshot:
    """What the loader would read, as (name, mtime in ns, size); None if unreadable."""
    try:
        with os.scandir(directory) as entries:
            found = []
            for entry in entries:
                # The loader's own filter: hidden files (editor swap files) are never policy.
                if entry.name.startswith(".") or not entry.name.endswith(SUFFIXES):
                    continue
                stat = entry.stat()  # Follows symlinks, as the loader's read does.
                found.append((entry.name, stat.st_mtime_ns, stat.st_size))
    except OSError:
        return None
    return tuple(sorted(found))


class PolicyReloader:
    def __init__(
        self,
        directory: str | Path,
        apply: Callable[[PolicySet], None],
        metrics: Metrics,
        *,
        interval: float = POLL_INTERVAL,
    ) -> None:
        self.directory = directory
        self._apply = apply
        self._metrics = metrics
        self.interval = interval
        self._seen: Snapshot = None
        self._pending: Snapshot = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._seen = snapshot(self.directory)
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def trigger(self) -> None:
        """Reload now, changed or not (``SIGHUP``); safe to call from a loop signal handler."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                await self.poll()
                continue
            self._wake.clear()
            self._seen, self._pending = snapshot(self.directory), None
            await self.reload("signal")

    async def poll(self) -> None:
        """Reload when the files differ from the active set's and match the previous poll."""
        current = snapshot(self.directory)
        if current == self._seen:
            self._pending = None
        elif current == self._pending:
            # Unchanged since the last poll: the writer is done.
            self._seen, self._pending = current, None
            await self.reload("change")
        else:
            self._pending = current

    async def reload(self, trigger: str = "manual") -> bool:
        """Load and swap; on any problem keep the active set. True if the new set is active."""
        try:
            # In a thread: a large set takes milliseconds to parse, the loop keeps serving.
            policies = await asyncio.to_thread(load_policies, self.directory)
        except PolicyLoadError as error:
            self._failed(trigger, error.errors)
            return False
        except Exception as error:  # A bug in the loader must not end hot reload for good.
            self._failed(trigger, [f"{self.directory}: {type(error).__name__}"])
            return False
        self._apply(policies)
        self._metrics.policy_reloads.labels("ok").inc()
        self._metrics.policy_reload_ok.set(1)
        log.info("policies reloaded", extra={"event": {
            "trigger": trigger, "rules": len(policies.rules), "files": list(policies.files)}})
        return True

    def _failed(self, trigger: str, errors: list[str]) -> None:
        self._metrics.policy_reloads.labels("failed").inc()
        self._metrics.policy_reload_ok.set(0)
        # One line per error, in the loader's words, so each one can be found and fixed.
        for line in errors:
            log.error("policy reload failed: %s", line, extra={"event": {
                "trigger": trigger, "policy_error": line}})
        log.error("policy reload failed, the previous policy set stays active",
                  extra={"event": {"trigger": trigger, "errors": len(errors)}})
