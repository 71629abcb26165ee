"""One pipelined connection of :class:`gateway.stores.resp.RespClient` to Redis.

:class:`_Connection` is an ``asyncio.Protocol``: commands queued in the same event-loop
iteration go out in one ``transport.write``, and replies, parsed with
:mod:`gateway.stores.resp_wire`, settle their waiters in order (FIFO). The client owns its
connections, picks one per command and runs the sweeper that times them out; this module owns
one socket and the matching of replies to waiters. It knows its client only through
:class:`ConnectionOwner`, so neither module imports the other's.

A failure of the link (lost, closed, bytes that are not RESP) fails every outstanding command
with a :class:`ConnectionError`, as the client's sweeper does with a :class:`TimeoutError`, and
aborts the connection; an error reply (:class:`~gateway.stores.resp_wire.ReplyError`) fails
only its own command. A RESP3 push (an invalidation message on a tracking connection) answers
no command: it goes to the owner's ``_push``, in stream order with the replies around it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from gateway.stores.resp_wire import _INCOMPLETE, Push, Reply, ReplyError, _parse


class ConnectionOwner(Protocol):
    """What a connection needs from its client."""

    _epoch: int
    _all: set[_Connection]

    def _conn_closing(self, conn: _Connection) -> None: ...
    def _conn_lost(self, conn: _Connection) -> None: ...
    def _push(self, conn: _Connection, push: Push) -> None: ...


class _Connection(asyncio.Protocol):
    """One connection: pipelined commands out, replies matched to waiters in order."""

    __slots__ = ("_loop", "_lost", "_need", "_out", "_owner", "_rest", "_rest_size", "closed",
                 "epoch", "heard", "lost_waiter", "pending", "progress", "transport")

    def __init__(self, owner: ConnectionOwner, loop: asyncio.AbstractEventLoop) -> None:
        self._owner = owner
        self._loop = loop
        self.epoch = owner._epoch  # aclose() starts a new one
        self.transport: asyncio.Transport | None = None
        self.pending: deque[asyncio.Future[Reply]] = deque()
        self._out: list[bytes] = []
        # The start of a reply whose end has not arrived yet, in pieces (joined once, when
        # _need bytes are in: a 1 MB value in 64 KB reads is copied once, not sixteen times).
        self._rest: list[bytes] = []
        self._rest_size = 0
        self._need = 0
        self.progress = 0.0  # loop.time() of the last progress while replies are outstanding
        self.heard = loop.time()  # loop.time() of the last bytes from Redis
        self.closed = False
        self._lost = False
        self.lost_waiter: asyncio.Future[None] = loop.create_future()

    # -- the request side -------------------------------------------------------------------

    def send(self, command: bytes) -> asyncio.Future[Reply]:
        """Queue one encoded command; the future gets its reply (or the connection's failure)."""
        future: asyncio.Future[Reply] = self._loop.create_future()
        if self.closed:  # never queue where no reply can come: fail, not hang
            future.set_exception(ConnectionError("connection to redis closed"))
            return future
        pending = self.pending
        if not pending:
            self.progress = self._loop.time()
        pending.append(future)
        out = self._out
        if not out:
            self._loop.call_soon(self._flush)
        out.append(command)
        return future

    def _flush(self) -> None:
        out = self._out
        if not out or self.closed or self.transport is None:
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.transport.write(data)

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # Known to aclose() from now on; commands reach it only once its handshake succeeded
        # (see RespClient._connect): a GET behind a failed SELECT would read another database.
        self._owner._all.add(self)

    def data_received(self, data: bytes) -> None:
        self.progress = self.heard = self._loop.time()
        rest = self._rest
        if rest:
            rest.append(data)
            self._rest_size += len(data)
            if self._rest_size < self._need:
                return
            data = b"".join(rest)
            rest.clear()
        pending = self.pending
        pos = 0
        size = len(data)
        try:
            while pos < size:
                reply, end = _parse(data, pos)
                if reply is _INCOMPLETE:
                    self._rest.append(data[pos:] if pos else data)
                    self._rest_size = size - pos
                    self._need = end - pos if end else 0
                    return
                pos = end
                if reply.__class__ is Push:
                    self._owner._push(self, reply)
                    continue
                future = pending.popleft()  # IndexError: a reply nobody asked for
                if future.done():
                    continue  # its caller was cancelled; the reply is dropped in order
                if isinstance(reply, ReplyError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)  # type: ignore[arg-type]
        except (ValueError, IndexError) as exc:
            self.fail(ConnectionError("redis sent bytes that are not a RESP reply"), exc)

    def eof_received(self) -> bool | None:
        self.fail(ConnectionError("redis closed the connection"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.fail(ConnectionError("connection to redis lost"), exc)
        if not self.lost_waiter.done():
            self.lost_waiter.set_result(None)
        self._owner._conn_lost(self)

    # -- lifecycle ---------------------------------------------------------------------------

    def fail(self, error: OSError, cause: BaseException | None = None) -> None:
        """Fail every outstanding command with ``error`` and abort the connection; idempotent."""
        self._fail_pending(error, cause)
        self.close(abort=True)

    def _fail_pending(self, error: OSError, cause: BaseException | None = None) -> None:
        if cause is not None:
            error.__cause__ = cause
        pending = self.pending
        while pending:
            future = pending.popleft()
            if not future.done():
                future.set_exception(error)
                # Retrieved even if its caller is gone, so asyncio never logs "never retrieved".
                future.exception()
        self._out.clear()

    def close(self, abort: bool = False) -> None:
        """Make the connection unusable and close it; idempotent."""
        if self.closed:
            return
        self.closed = True
        self._owner._conn_closing(self)
        if self.pending:
            # Someone still waits on this connection: they must get an error, not hang.
            self._fail_pending(ConnectionError("connection to redis closed"))
            abort = True
        transport = self.transport
        if transport is None or self._lost:
            return
        if abort:
            transport.abort()
        else:
            transport.close()
