"""The server protocol's writes and idle timer (gateway/server_protocol.py).

These drive GatewayHttpProtocol with uvicorn's real configuration and a real event loop, over a
transport that records what would reach the socket: the number of ``write()`` calls is exactly
what this protocol changes, and a socket cannot show it (the kernel may merge two writes).
The end-to-end behaviour over real sockets is covered by tests/integration and tests/security.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from gateway.server_protocol import GatewayHttpProtocol, GatewayWebSocketProtocol

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body in a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 10))

    return wrapper


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.writes.append(b"".join(bytes(d) for d in list_of_data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(
            name, default)


def responder(status: int, headers: list[tuple[bytes, bytes]], *bodies: bytes) -> App:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for index, body in enumerate(bodies):
            await send({"type": "http.response.body", "body": body,
                        "more_body": index < len(bodies) - 1})
        if not bodies:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    return app


async def exchange(
    app: App, request: bytes, *, keep_alive_timeout: float = 5.0,
) -> tuple[GatewayHttpProtocol, RecordingTransport]:
    config = uvicorn.Config(app, http=GatewayHttpProtocol, ws=GatewayWebSocketProtocol,
                            lifespan="off", log_config=None,
                            timeout_keep_alive=keep_alive_timeout)  # type: ignore[arg-type]
    protocol = GatewayHttpProtocol(config=config, server_state=ServerState(), app_state={},
                                   _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    protocol.data_received(request)
    await settle(protocol)
    return protocol, transport


async def settle(protocol: GatewayHttpProtocol) -> None:
    for _ in range(50):
        await asyncio.sleep(0)
        if not protocol.tasks:
            return
    raise AssertionError("the app did not finish")


GET = b"GET /api/chat?x=1 HTTP/1.1\r\nHost: gw\r\n\r\n"
JSON = [(b"content-type", b"application/json"), (b"content-length", b"11")]


@in_loop
async def test_fixed_length_response_is_one_write() -> None:
    _, transport = await exchange(responder(200, JSON, b'{"ok":true}'), GET)
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 11" in head
    assert body == b'{"ok":true}'
    assert not transport.closed


@in_loop
async def test_body_in_pieces_sends_head_with_the_first_piece() -> None:
    headers = [(b"content-length", b"6")]
    _, transport = await exchange(responder(200, headers, b"abc", b"def"), GET)
    assert len(transport.writes) == 2
    assert transport.writes[0].endswith(b"\r\n\r\nabc")
    assert transport.writes[1] == b"def"


@in_loop
async def test_streamed_response_sends_its_head_before_any_body() -> None:
    # SSE and chunked answers: the client must see the head at once, not with the first event.
    seen: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        seen.append(len(transport.writes))
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    transport = RecordingTransport()
    config = uvicorn.Config(app, http=GatewayHttpProtocol, lifespan="off", log_config=None)
    protocol = GatewayHttpProtocol(config=config, server_state=ServerState(), app_state={},
                                   _loop=asyncio.get_running_loop())
    protocol.connection_made(transport)
    protocol.data_received(GET)
    await settle(protocol)
    assert seen == [1]
    assert b"transfer-encoding: chunked" in transport.writes[0]
    assert transport.writes[1:] == [b"9\r\ndata: 1\n\n\r\n", b"0\r\n\r\n"]


@pytest.mark.parametrize("status", [204, 304])
@in_loop
async def test_bodiless_status_writes_the_head_alone(status: int) -> None:
    _, transport = await exchange(responder(status, []), GET)
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(b"\r\n\r\n")
    assert b"transfer-encoding" not in transport.writes[0]


@in_loop
async def test_head_request_gets_length_but_no_body() -> None:
    request = b"HEAD /api/chat HTTP/1.1\r\nHost: gw\r\n\r\n"
    _, transport = await exchange(responder(200, JSON, b""), request)
    assert b"".join(transport.writes).endswith(b"content-length: 11\r\n\r\n")


@in_loop
async def test_connection_close_writes_everything_then_closes() -> None:
    request = b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    _, transport = await exchange(responder(200, JSON, b'{"ok":true}'), request)
    assert len(transport.writes) == 1
    assert b"connection: close" in transport.writes[0]
    assert transport.writes[0].endswith(b'{"ok":true}')
    assert transport.closed


@in_loop
async def test_large_body_is_not_copied_into_the_head() -> None:
    body = b"x" * (256 * 1024)
    headers = [(b"content-length", str(len(body)).encode())]
    _, transport = await exchange(responder(200, headers, body), GET)
    assert len(transport.writes) == 1  # writelines: one call, no concatenation
    assert transport.writes[0].endswith(body)


@in_loop
async def test_invalid_header_value_is_refused_before_anything_is_written() -> None:
    app = responder(200, [(b"x-bad", b"a\nb"), (b"content-length", b"2")], b"ok")
    _, transport = await exchange(app, GET)
    # As in uvicorn: the response counts as started, so the connection is closed; the header
    # (a response-splitting attempt) never leaves.
    assert transport.writes == []
    assert transport.closed


@in_loop
async def test_raw_path_is_the_target_as_sent() -> None:
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        await responder(204, [])(scope, receive, send)

    request = b"GET http://evil.example/admin%2Fx?a=1#frag HTTP/1.1\r\nHost: gw\r\n\r\n"
    await exchange(app, request)
    assert scopes[0]["raw_path"] == b"http://evil.example/admin%2Fx"
    assert scopes[0]["query_string"] == b"a=1"


@in_loop
async def test_idle_connection_closes_after_the_keep_alive_timeout() -> None:
    protocol, transport = await exchange(responder(200, JSON, b'{"ok":true}'), GET,
                                         keep_alive_timeout=0.2)
    assert not transport.closed
    await asyncio.sleep(0.1)
    # A second request on the same connection restarts the idle clock without a new timer.
    timer = protocol.timeout_keep_alive_task
    protocol.data_received(GET)
    await settle(protocol)
    assert protocol.timeout_keep_alive_task is timer
    await asyncio.sleep(0.15)
    assert not transport.closed, "closed 0.15 s after the second request, timeout is 0.2 s"
    await asyncio.sleep(0.15)
    assert transport.closed


@in_loop
async def test_keep_alive_timer_never_closes_a_connection_upgraded_to_websocket() -> None:
    accepted = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await responder(200, JSON, b'{"ok":true}')(scope, receive, send)
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        accepted.set()
        await receive()

    # An HTTP request first arms the idle timer; then the same connection upgrades.
    protocol, transport = await exchange(app, GET, keep_alive_timeout=0.1)
    protocol.data_received(
        b"GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await asyncio.wait_for(accepted.wait(), 2)
    assert transport.get_protocol() is not protocol
    assert b"101 Switching Protocols" in transport.writes[-1]
    await asyncio.sleep(0.3)
    assert not transport.closed, "the HTTP keep-alive timer closed a WebSocket"
    transport.get_protocol().connection_lost(None)  # type: ignore[attr-defined]
