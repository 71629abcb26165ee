"""JSON request logs and audit events.

One JSON line per request is part of the product, so it must be cheap: Python ``logging`` costs
tens of microseconds per record (uvicorn's access log measured ~75 µs), which is a large share of
a forward. Request lines are therefore appended to a list and written to the stream in one call
per flush interval. Rare events (start-up, audit, errors) go through ``logging`` with a JSON
formatter.

What is logged is chosen here and nowhere else: the canonical path without its query string
(query strings carry tokens in the wild), never a header value, a token, a cookie or a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
import time
from typing import IO, Any

FLUSH_INTERVAL = 0.2
MAX_BUFFERED = 512


class RequestLog:
    """Buffers request lines and writes them in batches."""

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool = True) -> None:
        self._stream = stream
        self.enabled = enabled
        self._lines: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def emit(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record["time"] = round(time.time(), 3)
        record["type"] = "request"
        self._lines.append(json.dumps(record, separators=(",", ":")))
        if len(self._lines) >= MAX_BUFFERED:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        stream = self._stream or sys.stdout
        try:
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except (OSError, ValueError):
            # A closed or broken log stream must not take the data plane down with it.
            pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.flush()

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.flush()


class JsonFormatter(logging.Formatter):
    """Every log record as one JSON object; ``extra={"event": {...}}`` fields are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": round(record.created, 3),
            "type": "log",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            # Event fields add to the line; they never replace its own time, type or level.
            payload.update({k: v for k, v in event.items() if k not in payload})
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: a traceback may quote request data.
            payload["exception"] = record.exc_info[0].__name__
        return json.dumps(payload, separators=(",", ":"), default=str)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log prints query strings verbatim (tokens in ``?token=`` leak).
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def audit(event: str, **fields: Any) -> None:
    """An audit event: who did what, never with a secret (callers pass masked values only)."""
    logging.getLogger("gateway.audit").info(event, extra={"event": {"audit": event, **fields}})


def user_hash(user_id: str) -> str:
    """A short, stable pseudonym for logs: events of one user can be joined, not read."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]
