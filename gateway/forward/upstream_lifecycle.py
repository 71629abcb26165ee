"""The life of one upstream connection: its states, and how it finishes, fails, expires, closes.

:class:`ConnectionLifecycle` is the base of
:class:`~gateway.forward.upstream_protocol.UpstreamConnection`. That module holds the exchange
itself (writing a request, parsing its response); this one holds what happens around and
between exchanges: joining the pool, lending the connection back, failing whoever waits on it,
enforcing the pool's deadline, closing, and the transport going away (which also ends a body
delimited by the close). It is a base class rather than a helper object because the exchange
calls these methods on every request: inherited methods and slots cost nothing extra per call,
a delegate would cost an attribute lookup each time.

A connection is in exactly one state:

* ``IDLE``    parked in the pool (or not yet lent out); any byte arriving now is a protocol error.
* ``WAITING`` a request is being written and/or its response head is awaited.
* ``BODY``    the final response head arrived; the body streams into the response object.
* ``CLOSED``  unusable; the transport is closing or gone.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, Protocol, TypeVar

from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.forward.upstream_response import UpstreamResponse

IDLE: Final = 0
WAITING: Final = 1
BODY: Final = 2
CLOSED: Final = 3

INF: Final = float("inf")

_Conn = TypeVar("_Conn", contravariant=True)


class ConnectionOwner(Protocol[_Conn]):
    """What a connection needs from its pool; ``_Conn`` is the connection class it holds."""

    def _conn_made(self, conn: _Conn) -> None: ...
    def _conn_idle(self, conn: _Conn) -> None: ...
    def _conn_closing(self, conn: _Conn) -> None: ...
    def _conn_lost(self, conn: _Conn) -> None: ...


class ConnectionLifecycle(asyncio.Protocol):
    """The states of one connection and the transitions that end an exchange."""

    __slots__ = (
        "_body_timeout",
        "_chunked",
        "_content_length",
        "_drain_waiter",
        "_got_bytes",
        "_head_waiter",
        "_loop",
        "_lost",
        "_owner",
        "_reading_paused",
        "_response",
        "_reuse",
        "_sending",
        "deadline",
        "error",
        "retryable",
        "reused",
        "state",
        "transport",
    )

    def __init__(
        self,
        # Any: the pool holds the subclass, which this base cannot name; the subclass's own
        # __init__ checks the owner against it.
        owner: ConnectionOwner[Any],
        loop: asyncio.AbstractEventLoop,
        body_timeout: float | None,
    ) -> None:
        self._owner = owner
        self._loop = loop
        # ``inf`` rather than None keeps the hot path free of a branch: now + inf never expires.
        self._body_timeout = INF if body_timeout is None else body_timeout
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set on connect
        self.state: int = IDLE
        # The pool's sweeper closes or fails this connection once loop.time() passes it.
        self.deadline = INF
        self.error: UpstreamError | None = None
        self.reused = False
        self.retryable = False
        self._lost = False
        self._reuse = True
        self._sending = False
        self._reading_paused = False
        self._head_waiter: asyncio.Future[UpstreamResponse] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._response: UpstreamResponse | None = None
        # Set by the exchange as the response arrives; connection_lost reads them to tell a
        # request the pool may replay, and a close-delimited body from a cut-off one.
        self._got_bytes = False
        self._content_length: int | None = None
        self._chunked = False

    # -- asyncio.Protocol: the transport comes and goes ---------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._owner._conn_made(self)

    def eof_received(self) -> bool | None:
        if self.state == IDLE:
            # Leave the idle stack now rather than when connection_lost runs a loop iteration
            # later, so no request is written to a connection the upstream already closed.
            self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        state = self.state
        if state == WAITING:
            # Nothing of the response arrived on a connection that served a request before: the
            # upstream most likely closed it as idle just as we wrote, so the request was not
            # processed and the pool may replay it (idempotent, replayable requests only).
            self.retryable = self.reused and not self._got_bytes
            reason = "closed_mid_head" if self._got_bytes else "closed_before_response"
            self._fail(UpstreamUnavailable(reason=reason), exc)
        elif state == BODY:
            response = self._response
            if (
                exc is None
                and response is not None
                and self._content_length is None
                and (not self._chunked and response.has_body)
            ):
                # No Content-Length and not chunked: the body is delimited by the close itself.
                self._reuse = False
                self._finish()
            else:
                self._fail(UpstreamUnavailable(reason="closed_mid_body"), exc)
        self.close()
        self._wake_drain()
        self._owner._conn_lost(self)

    # -- transitions -------------------------------------------------------------------------

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self) -> None:
        """The final response is complete: hand the connection back the moment it is free."""
        response = self._response
        if response is not None:
            response._eof = True
            response._conn = None
            response._wake()
        self._response = None
        self._head_waiter = None
        if not self._reuse or self._sending:
            self.close()
            return
        self.state = IDLE
        self.reused = True
        if self._reading_paused:
            self._resume_reading()
        self._owner._conn_idle(self)

    def _resume_reading(self) -> None:
        self._reading_paused = False
        # Time spent paused was the consumer's, not the upstream's: restart the stall clock.
        if self.state == BODY:
            self.deadline = self._loop.time() + self._body_timeout
        if not self._lost:
            self.transport.resume_reading()

    def _fail(self, error: UpstreamError, cause: BaseException | None = None) -> None:
        """End whatever is in flight with ``error`` and abort the connection."""
        if self.state == CLOSED:
            return
        if cause is not None:
            error.__cause__ = cause
        self.error = error
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        response = self._response
        if response is not None:
            self._response = None
            response._error = error
            response._conn = None
            response._wake()
        self.close(abort=True)

    def expire(self) -> None:
        """Called by the pool's sweeper once ``deadline`` has passed."""
        state = self.state
        if state == WAITING:
            reason = "write_timeout" if self._sending else "read_timeout"
            self._fail(UpstreamTimeout(reason=reason))
        elif state == BODY:
            self._fail(UpstreamTimeout(reason="body_timeout"))
        else:
            self.close()

    def close(self, abort: bool = False) -> None:
        """Make the connection unusable and close it; idempotent."""
        if self.state == CLOSED:
            return
        waiter = self._head_waiter
        if self._response is not None or (waiter is not None and not waiter.done()):
            # Someone still waits on this connection: they must get an error, not hang.
            self._fail(UpstreamUnavailable(reason="connection_closed"))
            return
        self.state = CLOSED
        self.deadline = INF
        self._owner._conn_closing(self)
        self._wake_drain()
        if self._lost:
            return
        transport = self.transport
        # A graceful close would first flush unsent request bytes to an upstream that may never
        # read them; abort instead, so no half-closed transport lingers.
        if abort or transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()
