"""A real chatbot backend for tests: records every request it receives, exactly as received.

Run as its own process (``python -m tests.support.recorder PORT``). Tests read what arrived with
``GET /__recorder__/requests`` on the recorder's own port (never through the gateway) and clear
it with ``DELETE``. Paths with special behaviour:

- ``/sse``: one event, then waits until ``POST /__recorder__/release`` (max 10 s), then a second
  event and the end; ``/__recorder__/state`` says whether the stream finished.
- ``/cookies``: three ``Set-Cookie`` headers.
- ``/slow``: answers after ``?delay=`` seconds.
- ``/status/NNN``: answers with that status (no body for 204/304).
- ``/chunked``: a chunked (length-less) response in three pieces.
- ``/echo-headers``: the received headers as JSON.
- anything else: 200 ``{"ok": true}``.

WebSocket (any path): the handshake and every frame are recorded as ``{"ws": ...}`` entries
(read with ``GET /__recorder__/ws``);
text frames are echoed back as ``echo:<text>``; the text ``close-4000`` makes the recorder close
with 4000 "bye"; the subprotocol ``chat.v1`` is chosen when offered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any

import uvicorn

REQUESTS: list[dict[str, Any]] = []
WS_EVENTS: list[dict[str, Any]] = []
STATE: dict[str, Any] = {"sse_finished": False, "sse_started": False}
RELEASE = asyncio.Event()


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _json(
    send: Any, payload: Any, status: int = 200, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    body = await _read_body(receive)
    if path.startswith("/__recorder__/"):
        await _control(path, scope["method"], send)
        return
    REQUESTS.append(
        {
            "method": scope["method"],
            "path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
            "body_b64": base64.b64encode(body).decode(),
        }
    )
    query = dict(
        part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part
    )
    if path == "/sse":
        await _sse(send)
    elif path == "/cookies":
        await _json(
            send,
            {"ok": True},
            extra=[(b"set-cookie", f"c{i}={i}; Path=/".encode()) for i in range(3)],
        )
    elif path == "/slow":
        await asyncio.sleep(float(query.get("delay", "1")))
        await _json(send, {"ok": True, "slow": True})
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        if status in (204, 304):
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            await _json(send, {"status": status}, status=status)
    elif path == "/chunked":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for piece in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/echo-headers":
        await _json(send, {"headers": REQUESTS[-1]["headers"]})
    else:
        await _json(send, {"ok": True, "path": path})


async def _websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    # Every event names its connection's query string, so tests tell connections apart.
    query = scope["query_string"].decode("latin-1")
    WS_EVENTS.append({
        "ws": "handshake",
        "path": scope["raw_path"].decode("latin-1"),
        "query": scope["query_string"].decode("latin-1"),
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "subprotocols": scope.get("subprotocols", []),
    })
    chosen = "chat.v1" if "chat.v1" in scope.get("subprotocols", []) else None
    await send({"type": "websocket.accept", "subprotocol": chosen})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            WS_EVENTS.append({"ws": "closed", "code": message.get("code"), "query": query})
            return
        text = message.get("text")
        WS_EVENTS.append({"ws": "frame", "text": text, "query": query,
                         "bytes_len": len(message.get("bytes") or b"")})
        if text == "close-4000":
            await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
            return
        await send({"type": "websocket.send", "text": f"echo:{text}"})


async def _sse(send: Any) -> None:
    STATE["sse_started"] = True
    STATE["sse_finished"] = False
    RELEASE.clear()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
    try:
        await asyncio.wait_for(RELEASE.wait(), timeout=10)
    except TimeoutError:
        pass
    await send({"type": "http.response.body", "body": b"data: second\n\n", "more_body": True})
    STATE["sse_finished"] = True
    await send({"type": "http.response.body", "body": b""})


async def _control(path: str, method: str, send: Any) -> None:
    if path == "/__recorder__/requests":
        if method == "DELETE":
            REQUESTS.clear()
            WS_EVENTS.clear()
            await _json(send, {"cleared": True})
        else:
            await _json(send, REQUESTS)
    elif path == "/__recorder__/ws":
        await _json(send, WS_EVENTS)
    elif path == "/__recorder__/release":
        RELEASE.set()
        await _json(send, {"released": True})
    elif path == "/__recorder__/state":
        await _json(send, STATE)
    else:
        await _json(send, {"error": "unknown"}, status=404)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
