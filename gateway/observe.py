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
import hmac
import json
import logging
import secrets
import sys
import time
from collections.abc import Callable, Iterable
from typing import IO, Any, ClassVar, Final

from gateway.tasks import cancel_and_wait

FLUSH_INTERVAL = 0.2
# json.dumps builds a new encoder per call; the request log writes one line per request, so the
# same compact ASCII encoder is built once (same output as json.dumps(..., separators=(",", ":"))).
_ENCODE: Callable[[dict[str, Any], int], Iterable[str]] = getattr(  # noqa: B009 - untyped C API
    json.encoder, "c_make_encoder"
)(
    None, None, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
)
_QUOTE: Callable[[str], str] = json.encoder.encode_basestring_ascii
_REQUEST_LINE = (
    '{"method":%s,"path":%s,"rule":%s,"decision":%s,"level":%s,"user":%s,"status":%d,'
    '"error":%s,"reason":%s,"ms":%.3f,"upstream_ms":%s%s,"time":%.3f,"type":"request"}'
)


def _text(value: str | None) -> str:
    return "null" if value is None else _QUOTE(value)


MAX_BUFFERED = 512
USER_ID_MODES: Final = ("hash", "plain", "none")


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
        user = record.get("user")
        if user is not None:
            record["user"] = user_hash(user)
        record["time"] = round(time.time(), 3)
        record["type"] = "request"
        self._lines.append("".join(_ENCODE(record, 0)))
        if len(self._lines) >= MAX_BUFFERED:
            self.flush()

    def request(
        self, method: str, path: str, rule: str | None, decision: str, level: str | None,
        user: str | None, status: int, error: str | None, reason: str | None, seconds: float,
        upstream: float | None, would: str | None,
    ) -> None:
        """One HTTP request's line: the same fields and order as :meth:`emit` would write.

        Formatted with one template instead of a dict through the JSON encoder: this runs once
        per request on the data plane (bench/RESULTS.md), and every string that varies is still
        escaped by the json module's own C function.
        """
        if not self.enabled:
            return
        self._lines.append(_REQUEST_LINE % (
            _text(method), _text(path), _text(rule), _text(decision), _text(level),
            _text(None if user is None else user_hash(user)), status, _text(error),
            _text(reason), seconds * 1000,
            "null" if upstream is None else "%.3f" % (upstream * 1000),
            "" if would is None else ',"would":' + _text(would),
            time.time()))
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
        task, self._task = self._task, None
        await cancel_and_wait(task)
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


class DropAccessLines(logging.Filter):
    """Drops uvicorn's per-connection WebSocket lines: they print the query string verbatim.

    uvicorn writes them on its error logger, so turning its access log off does not remove
    them; the gateway's own request log records WebSocket connections without the query.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith('%s - "WebSocket'))


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(DropAccessLines())
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


class _UserIds:
    """How users appear in logs; one setting per process, like the log stream itself."""

    mode: ClassVar[str] = "hash"
    # Without a configured salt each process makes its own: hashes then join lines of one
    # process only, which is still better than a plain SHA-256 that anyone can reverse by
    # hashing every customer number.
    salt: ClassVar[bytes] = secrets.token_bytes(32)
    cache: ClassVar[dict[str, str]] = {}


def configure_user_ids(mode: str = "hash", salt: bytes | None = None) -> None:
    """``log.user_id`` (hash | plain | none) and ``log.user_hash_salt`` for this process."""
    if mode not in USER_ID_MODES:
        raise ValueError(f"unknown user id mode {mode!r}")
    _UserIds.mode = mode
    if salt is not None:
        _UserIds.salt = salt
    _UserIds.cache = {}


def salted_user_hash(salt: bytes, user_id: str) -> str:
    return hmac.new(salt, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def user_hash(user_id: str) -> str:
    """How ``user_id`` appears in request lines and audit events (``log.user_id``).

    ``hash`` (default): a salted HMAC, so events of one user can be joined, not read; ``plain``:
    the id itself; ``none``: ``-``. Cached, because request lines ask once per request.
    """
    cache = _UserIds.cache
    shown = cache.get(user_id)
    if shown is not None:
        return shown
    mode = _UserIds.mode
    shown = salted_user_hash(_UserIds.salt, user_id) if mode == "hash" else (
        user_id if mode == "plain" else "-")
    if len(cache) >= 10_000:
        cache.clear()  # Bounded: ids come from tokens and sessions, so from clients.
    cache[user_id] = shown
    return shown
