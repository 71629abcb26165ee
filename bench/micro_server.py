"""Micro-benchmark of the server path plus the pipeline, without sockets or an upstream.

bench/micro_pipeline.py calls the app directly; this one feeds raw HTTP/1.1 request bytes to the
gateway's own server protocol (``GatewayHttpProtocol``: httptools parse, scope, request cycle,
task, ``receive``, the response head and body written in one piece) over a transport that only
records what is written, on one keep-alive connection. The upstream pool is micro_pipeline's
canned one. What it measures is the Python cost per request of everything but the kernel and
the upstream client: use it to compare two versions of the server path, and ``make bench`` for
what a client sees.

    .venv/bin/python bench/micro_server.py [requests]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt

sys.path.insert(0, str(Path(__file__).parent))
from micro_pipeline import BODY, ISSUER, SECRET, best_per_call, build

from gateway.server import uvicorn_config
from gateway.server_protocol import GatewayHttpProtocol


class RecordingTransport(asyncio.Transport):
    """A transport that keeps the last write and wakes the benchmark when a response is out."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.protocol: asyncio.BaseProtocol | None = None

    def get_protocol(self) -> asyncio.BaseProtocol:
        if self.protocol is None:
            raise RuntimeError("no protocol attached")
        return self.protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written = bytes(data)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080),
                "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = build(Path(tmp))
        app.request_log.flush = lambda: app.request_log._lines.clear()  # no file writes

        token = jwt.encode({"sub": "alice-000000", "iss": ISSUER, "exp": int(time.time()) + 3600},
                           SECRET, algorithm="HS256", headers={"kid": "k1"})
        request = (b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                   b"Authorization: Bearer " + token.encode() + b"\r\n"
                   b"X-User-Id: mallory\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%b" % (len(BODY), BODY))
        config = uvicorn_config(app, host="127.0.0.1", port=8080)
        config.load()
        loop = asyncio.get_running_loop()
        protocol = GatewayHttpProtocol(config, server_state=_ServerState(), app_state={})
        transport = RecordingTransport()
        transport.protocol = protocol
        protocol.connection_made(transport)

        async def one() -> None:
            transport.waiter = loop.create_future()
            protocol.data_received(request)
            await transport.waiter

        best = await best_per_call(one, count, clock=time.process_time)
        if not transport.written.startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"the gateway answered {transport.written[:40]!r}, not 200")
        protocol.connection_lost(None)

        print(f"server + pipeline: {best * 1e6:.2f} µs of CPU per request (best of 5 × {count})")


class _ServerState:
    """uvicorn's ServerState, as the protocol reads it."""

    def __init__(self) -> None:
        self.total_requests = 0
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.default_headers: list[tuple[bytes, bytes]] = []


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
