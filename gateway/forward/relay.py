"""Relaying the backend's response to the client, each piece as soon as it arrives.

Fixed-length bodies end by themselves; streams (SSE, chunked) may last forever, so they get a
watcher that notices the client leaving and ends the relay, which closes the upstream
connection instead of reading a stream nobody receives.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from gateway.errors import GatewayError
from gateway.forward.upstream import UpstreamResponse
from gateway.rewrite.response_headers import response_headers

log = logging.getLogger("gateway.forward")


class Started(Protocol):
    """Where the relay notes the status once the response head is on its way."""

    status: int | None


async def relay(
    response: UpstreamResponse, receive: Any, send: Any, set_cookie: bytes | None,
    started: Started,
) -> None:
    """Stream the upstream response to the client, each piece as soon as it arrives."""
    try:
        headers = response_headers(response.headers)
        if set_cookie is not None:
            # The session changed while resolving (created or upgraded): the client learns
            # its new cookie on the backend's response.
            headers.append((b"set-cookie", set_cookie))
        started.status = response.status
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if not response.has_body:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        expected = response.content_length
        if expected is not None:
            # Fixed-length bodies end by themselves; a client that leaves costs at most the rest
            # of this body.
            received = 0
            while received < expected:
                chunk = await response.read()
                if not chunk:
                    break
                received += len(chunk)
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": received < expected}
                )
            if received < expected:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await _relay_stream(response, receive, send)
    finally:
        await response.aclose()


async def _relay_stream(response: UpstreamResponse, receive: Any, send: Any) -> None:
    # Streams (SSE, chunked) may last forever: uvicorn drops writes to a gone client silently, so
    # a watcher notices the disconnect and ends the relay, which closes the upstream connection.
    async def pump() -> None:
        while True:
            chunk = await response.read()
            if not chunk:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    pump_task = asyncio.ensure_future(pump())
    watch_task = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({pump_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump_task, watch_task):
            if not task.done():
                task.cancel()
        await asyncio.gather(pump_task, watch_task, return_exceptions=True)
    if pump_task in done and pump_task.exception() is not None:
        error = pump_task.exception()
        if isinstance(error, GatewayError):
            # Headers are out already; the stream just ends early.
            log.warning("upstream stream ended early", extra={"event": {"reason": error.reason}})
            return
        raise error  # type: ignore[misc]
