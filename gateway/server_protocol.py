"""uvicorn's httptools protocol, with the fixes and the per-request savings the gateway needs.

Two reasons to subclass instead of taking uvicorn's protocol as it is:

* **The raw request target.** uvicorn parses the target with ``httptools.parse_url``, which
  turns the absolute form ``GET http://evil.example/admin`` into the path ``/admin`` and drops a
  ``#fragment``. The gateway must see what the client sent to refuse both (CONTRACT §6), so
  ``raw_path`` is the path part of the target exactly as sent (everything before ``?``); the
  canonical-path check then rejects anything that is not a plain origin-form path.
* **Cost per request** (bench/RESULTS.md, issue 7). uvicorn writes a response's head as soon as
  ``http.response.start`` is sent and the body in a second ``write()``: two system calls and two
  TCP segments for a small JSON answer. Here the head of a fixed-length response waits for the
  first body piece and both go out in one ``write()``; streamed responses (chunked, SSE) still
  get their head at once, so the first event is not delayed. uvicorn also arms a keep-alive
  timer after every response and cancels it on the next request; here each connection keeps at
  most one timer, which checks the time of the last activity when it fires. Header validation
  runs one regular expression over all names and one over all values instead of two per header.

Everything else (pipelining, ``Expect: 100-continue``, flow control, WebSocket upgrade, the
lifespan) is uvicorn's own; this class relies on uvicorn's internals, which is why
pyproject.toml pins uvicorn to the minor version these were written against.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

# Bodies up to this size are joined with the head into one bytes object (a copy); a larger
# body is written after the head with writelines, which costs no copy.
_JOIN_LIMIT = 64 * 1024


class GatewayCycle(RequestResponseCycle):
    """One request/response exchange; ``send`` writes a fixed-length head with its body."""

    # The head of a fixed-length response, held until the first body piece.
    held_head: bytes = b""

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")
            self._start(message)
        elif not self.response_complete:
            if message["type"] != "http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")
            self._body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{message['type']}' sent, after response already "
                "completed.")

    def _start(self, message: Any) -> None:
        self.response_started = True
        self.waiting_for_100_continue = False
        status_code: int = message["status"]
        headers = message.get("headers", ())
        if self.default_headers:
            headers = self.default_headers + list(headers)
        names = b"".join([name for name, _ in headers])
        values = b"".join([value for _, value in headers])
        # The expressions are character classes, so searching the concatenation finds exactly
        # what searching each name (each value) would.
        if HEADER_RE.search(names):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(values):
            raise RuntimeError("Invalid HTTP header value.")

        content = [STATUS_LINE[status_code]]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                if b"close" in [token.lower().strip() for token in value.split(b",")]:
                    self.keep_alive = False
                    has_connection_close = True
            content.extend((name, b": ", value, b"\r\n"))
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        head_request = self.scope["method"] == "HEAD"
        if self.chunked_encoding is None and not head_request and status_code not in (204, 304):
            # Neither Content-Length nor Transfer-Encoding: the body is sent chunked.
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        head = b"".join(content)
        if self.chunked_encoding is False and self.expected_content_length > 0 and not head_request:
            self.held_head = head
        else:
            self.transport.write(head)

    def _body(self, body: bytes, more_body: bool) -> None:
        head = self.held_head
        if head:
            self.held_head = b""
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            data = b""
        elif self.chunked_encoding:
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            data = body
        if head:
            if len(data) <= _JOIN_LIMIT:
                self.transport.write(head + data)
            else:
                self.transport.writelines((head, data))
        elif data:
            self.transport.write(data)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()


class GatewayHttpProtocol(HttpToolsProtocol):
    """httptools' protocol with the raw target, one-write responses and one idle timer."""

    _last_active = 0.0

    def data_received(self, data: bytes) -> None:
        # uvicorn cancels the keep-alive timer here, on every request; noting the time is
        # enough, because the timer looks at it when it fires.
        self._last_active = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def handle_websocket_upgrade(self) -> None:
        # The connection now belongs to the WebSocket protocol, which has its own ping timeouts:
        # a keep-alive timer left from an earlier request on it must not close it.
        self._unset_keepalive_if_required()
        super().handle_websocket_upgrade()

    def on_headers_complete(self) -> None:
        parser = self.parser
        scope: Any = self.scope
        http_version = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        raw_path, _, query = self.url.partition(b"?")
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("latin-1") + raw_path
        # A fragment is never part of the query (the path part refuses ``#`` outright).
        scope["query_string"] = query.partition(b"#")[0]

        app: Any = self.app
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")

        existing_cycle = self.cycle
        self.cycle = GatewayCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:
            # Pipelined requests wait for the one before them (uvicorn's behaviour).
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        self._last_active = self.loop.time()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A request is in progress: its completion re-arms the timer.
            return
        idle = self.loop.time() - self._last_active
        if idle >= self.timeout_keep_alive:
            self.transport.close()
        else:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive - idle, self.timeout_keep_alive_handler)


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, quiet about handshakes the gateway refuses.

    The gateway refuses a handshake with an HTTP response (``websocket.http.response``: 401,
    403 with the contract's JSON body). uvicorn 0.54 counts such a handshake as never completed
    and logs "ASGI callable returned without completing handshake." at error level for each
    one, so every unauthenticated visitor would page an operator. Once the refusal's body is
    sent, the handshake is over, and that is what this records.
    """

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True
