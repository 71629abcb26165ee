"""The stream cases of ``make bench`` (issue 7): SSE latency, 10,000 idle WebSockets, re-auth cost.

Three roles in one file, each its own process:

- ``streams.py backend --port P``: the stream backend (plain asyncio on uvloop, core 1). ``GET
  /sse?count=N&interval_ms=I`` writes one event every I ms whose data is
  ``time.monotonic_ns()`` read just before the write (CLOCK_MONOTONIC is one clock for every
  process on the machine), then ends; a WebSocket handshake on any path gets an echo socket
  (text and binary frames echoed, pings answered); any other request gets a small JSON.
- ``streams.py client PHASE ...``: the load side (core 1): SSE readers, WebSocket clients on
  raw asyncio protocols (a few hundred bytes per idle socket, so 10,000 fit easily). It reads
  the gateway's CPU time and RSS from ``/proc/<pid>`` itself, around exactly what it does.
- ``streams.py reauth --config C --token T``: the micro-benchmark of what the WebSocket bridge
  runs for every client message (``WebSocketBridge._recheck``), in-process, on core 0.

``run(bench)`` (called by bench.py after the HTTP cases, or alone with ``BENCH_ONLY=streams``)
starts the backend and a gateway in front of it, each recorded in ``$BENCH_TMP/pids`` and stopped
by pid, runs the client phases with timeouts and returns the numbers for RESULTS.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

SSE_EVENTS = int(os.environ.get("BENCH_SSE_EVENTS", 500))
SSE_INTERVAL_MS = int(os.environ.get("BENCH_SSE_INTERVAL_MS", 20))
SSE_LOADED = os.environ.get("BENCH_SSE_LOADED", "1") != "0"
WS_IDLE = int(os.environ.get("BENCH_WS_IDLE", 10_000))
WS_OPEN_CONCURRENCY = int(os.environ.get("BENCH_WS_CONCURRENCY", 200))
WS_MESSAGES = int(os.environ.get("BENCH_WS_MESSAGES", 20_000))
WS_MSG_CONNECTIONS = 4
WS_MSG_ROUNDS = int(os.environ.get("BENCH_WS_ROUNDS", 3))
REAUTH_CALLS = 100_000
REAUTH_REPEATS = 5
# File descriptors the gateway needs besides two per bridged socket (listeners, logs, epoll…).
FD_MARGIN = 150
# A bridged WebSocket holds two sockets in the gateway: the client's and the backend's.
FDS_PER_SOCKET = 2

STREAMS_POLICY = """\
# The stream cases' route policy (bench/streams.py).
description: bench streams
default: deny
rules:
  - name: events
    match: {path: /sse, methods: [GET]}
    require: authenticated
  - name: chat-socket
    match: {path: /ws, websocket: true}
    require: authenticated
  - name: public-socket
    match: {path: /ws-public, websocket: true}
    require: public
  - name: chat
    match: {path: /api/chat, methods: [POST]}
    require: authenticated
"""


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (raising the hard one needs CAP_SYS_RESOURCE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1_048_576
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# -- WebSocket frames (RFC 6455), just what the cases need --------------------------------------


def _mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return data
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    n = len(payload)
    bit = 0x80 if mask else 0
    head = bytearray([0x80 | opcode])
    if n < 126:
        head.append(bit | n)
    elif n < 65536:
        head.append(bit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(bit | 127)
        head += n.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        return bytes(head) + key + _mask(payload, key)
    return bytes(head) + payload


def decode_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Complete frames at the start of ``buf`` as (opcode, payload); consumes them."""
    frames = []
    while len(buf) >= 2:
        opcode = buf[0] & 0x0F
        masked = buf[1] & 0x80
        n = buf[1] & 0x7F
        at = 2
        if n == 126:
            if len(buf) < 4:
                break
            n, at = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, at = int.from_bytes(buf[2:10], "big"), 10
        key = b""
        if masked:
            key, at = bytes(buf[at:at + 4]), at + 4
        if len(buf) < at + n:
            break
        payload = bytes(buf[at:at + n])
        del buf[:at + n]
        frames.append((opcode, _mask(payload, key) if masked else payload))
    return frames


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())  # noqa: S324 - RFC 6455


# -- the backend -------------------------------------------------------------------------------


class BackendProtocol(asyncio.Protocol):
    """One connection: plain HTTP (keep-alive), an SSE stream, or an echo WebSocket."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.state = "http"
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.state == "ws":
            self._frames()
            return
        while self.state == "http":
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", 0))
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[:end + 4 + length]
            target = head[0].split(" ")[1]
            if headers.get("upgrade", "").lower() == "websocket":
                accept = accept_key(headers["sec-websocket-key"].encode())
                assert self.transport is not None  # noqa: S101
                self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                                     + b"\r\n\r\n")
                self.state = "ws"
                self._frames()
                return
            if target.startswith("/sse"):
                self._start_sse(target)
                return
            body = b'{"ok":true}\n'
            assert self.transport is not None  # noqa: S101
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(body), body))

    def _frames(self) -> None:
        assert self.transport is not None  # noqa: S101
        for opcode, payload in decode_frames(self.buf):
            if opcode in (1, 2):
                self.transport.write(encode_frame(opcode, payload, mask=False))
            elif opcode == 9:
                self.transport.write(encode_frame(10, payload, mask=False))
            elif opcode == 8:
                self.transport.write(encode_frame(8, payload[:2], mask=False))
                self.transport.close()
                return

    def _start_sse(self, target: str) -> None:
        query = dict(p.partition("=")[::2] for p in target.partition("?")[2].split("&") if p)
        self.remaining = int(query.get("count", 1000))
        self.interval = int(query.get("interval_ms", 20)) / 1000
        self.state = "sse"
        self.seq = 0
        assert self.transport is not None  # noqa: S101
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
        self.timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.seq += 1
        # The write time, read as late as possible: only the formatting comes after it.
        written = time.monotonic_ns()
        event = b"id: %d\ndata: %d\n\n" % (self.seq, written)
        transport.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.remaining -= 1
        if self.remaining <= 0:
            transport.write(b"0\r\n\r\n")
            # The stream has ended: the connection is a keep-alive one again (the gateway's
            # pool reuses it), and a request that arrived meanwhile is served now.
            self.state, self.timer = "http", None
            self.data_received(b"")
            return
        self.timer = asyncio.get_running_loop().call_later(self.interval, self._tick)


def cmd_backend(args: argparse.Namespace) -> int:
    raise_nofile()
    loop = new_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        BackendProtocol, "127.0.0.1", args.port, backlog=4096))
    try:
        loop.run_forever()  # until SIGTERM
    finally:
        server.close()
    return 0


# -- the client --------------------------------------------------------------------------------


_EVENT = re.compile(rb"data: (\d+)\n\n")


class SSEReader(asyncio.Protocol):
    def __init__(self, request: bytes, count: int) -> None:
        self.request = request
        self.count = count
        self.buf = b""
        self.status: int | None = None
        self.latencies: list[int] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.buf += data
        if self.status is None:
            if b"\r\n" not in self.buf:
                return
            self.status = int(self.buf.split(b" ", 2)[1])
            if self.status != 200:
                self._finish()
                return
        last = 0
        for match in _EVENT.finditer(self.buf):
            self.latencies.append(now - int(match.group(1)))
            last = match.end()
        self.buf = self.buf[last:]
        if len(self.latencies) >= self.count:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        self.transport.close()


async def read_sse(port: int, count: int, headers: dict[str, str]) -> tuple[int | None, list[int]]:
    lines = [f"GET /sse?count={count}&interval_ms={SSE_INTERVAL_MS} HTTP/1.1",
             f"Host: 127.0.0.1:{port}", "Accept: text/event-stream",
             *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    _, reader = await loop.create_connection(lambda: SSEReader(request, count), "127.0.0.1", port)
    await asyncio.wait_for(reader.done, timeout=count * SSE_INTERVAL_MS / 1000 + 30)
    return reader.status, reader.latencies


class WSClient(asyncio.Protocol):
    """A client WebSocket: handshake, masked frames, pings answered, one request at a time."""

    def __init__(self, handshake: bytes, key: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.handshake = handshake
        self.expect = accept_key(key)
        self.buf = bytearray()
        self.opened: asyncio.Future[tuple[int, dict[str, str]]] = loop.create_future()
        self.reply: asyncio.Future[bytes] | None = None
        self.closed = False
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.handshake)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.opened.done():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            status = int(head[0].split(" ")[1])
            if status == 101 and headers.get("sec-websocket-accept", "").encode() != self.expect:
                status = -1
            self.opened.set_result((status, headers))
            if status != 101:
                assert self.transport is not None  # noqa: S101
                self.transport.close()
                return
        assert self.transport is not None  # noqa: S101
        for opcode, payload in decode_frames(self.buf):
            if opcode in (1, 2):
                if self.reply is not None and not self.reply.done():
                    self.reply.set_result(payload)
            elif opcode == 9:
                self.transport.write(encode_frame(10, payload, mask=True))
            elif opcode == 8:
                self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_result((0, {}))
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(ConnectionError(f"closed ({self.close_code})"))

    async def request(self, payload: bytes) -> bytes:
        self.reply = asyncio.get_running_loop().create_future()
        assert self.transport is not None  # noqa: S101
        self.transport.write(encode_frame(1, payload, mask=True))
        return await self.reply

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(8, (1000).to_bytes(2, "big"), mask=True))
            self.transport.close()


async def ws_open(port: int, path: str, token: str | None,
                  timeout: float = 30) -> tuple[WSClient, int, dict[str, str]]:
    key = base64.b64encode(os.urandom(16))
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key.decode()}",
             "Sec-WebSocket-Version: 13"]
    if token is not None:
        # As client.js does in a browser: the token rides in the subprotocol offer.
        lines.append(f"Sec-WebSocket-Protocol: bearer, {token}")
    handshake = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: WSClient(handshake, key), "127.0.0.1", port)
    status, headers = await asyncio.wait_for(client.opened, timeout)
    return client, status, headers


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and the open file descriptors of ``pid``."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    values["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return values


def proc_cpu_s(pid: int) -> float:
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def summary_us(latencies_ns: list[int]) -> dict[str, float]:
    values = sorted(v / 1000 for v in latencies_ns)
    return {"n": len(values), "median_us": statistics.median(values),
            "p99_us": values[min(len(values) - 1, int(len(values) * 0.99))],
            "min_us": values[0], "max_us": values[-1]}


async def phase_checks(args: argparse.Namespace) -> dict[str, Any]:
    """The gateway really authenticates the streams before anything is timed."""
    checks = []
    status, latencies = await read_sse(args.gateway, 3, {"Authorization": f"Bearer {args.token}"})
    checks.append(["SSE GET /sse with a valid token", f"{status}, {len(latencies)} events",
                   status == 200 and len(latencies) == 3])
    status, _ = await read_sse(args.gateway, 3, {})
    checks.append(["SSE GET /sse without a token", f"{status}", status == 401])
    client, status, headers = await ws_open(args.gateway, "/ws", args.token)
    echoed = await asyncio.wait_for(client.request(b"ping?"), 10) if status == 101 else None
    client.close()
    checks.append(["WebSocket /ws, subprotocol `bearer, <jwt>`",
                   f"{status}, subprotocol {headers.get('sec-websocket-protocol')}, "
                   f"echo {'ok' if echoed == b'ping?' else echoed!r}",
                   status == 101 and echoed == b"ping?"
                   and headers.get("sec-websocket-protocol") == "bearer"])
    for what, token in (("without a token", None), ("with a wrong-signature token", args.bad)):
        client, status, _ = await ws_open(args.gateway, "/ws", token)
        client.close()
        checks.append([f"WebSocket /ws {what}", f"{status} (refused before the upgrade)"
                       if status != 101 else "101", status in (401, 403)])
    return {"checks": checks}


async def phase_sse(args: argparse.Namespace) -> dict[str, Any]:
    """Alternating rounds direct / gateway; the first events of each stream are a warm-up."""
    warm = 10
    per_round = args.events // 2 + warm
    direct: list[int] = []
    gateway: list[int] = []
    for _ in range(2):
        for port, headers, into in ((args.backend, {}, direct),
                                    (args.gateway, {"Authorization": f"Bearer {args.token}"},
                                     gateway)):
            status, latencies = await read_sse(port, per_round, headers)
            if status != 200:
                raise RuntimeError(f"SSE on port {port} answered {status}")
            into += latencies[warm:]
    return {"direct": summary_us(direct), "gateway": summary_us(gateway)}


async def phase_sse_gateway(args: argparse.Namespace) -> dict[str, Any]:
    warm = 10
    status, latencies = await read_sse(args.gateway, args.events + warm,
                                       {"Authorization": f"Bearer {args.token}"})
    if status != 200:
        raise RuntimeError(f"SSE through the gateway answered {status}")
    return {"gateway": summary_us(latencies[warm:])}


async def phase_messages(args: argparse.Namespace) -> dict[str, Any]:
    """Gateway CPU per relayed message (in + echo back), authenticated vs public route."""
    payload = b'{"message":"hello","n":0}'
    rounds: list[dict[str, Any]] = []

    async def pump(client: WSClient, count: int) -> None:
        for _ in range(count):
            await client.request(payload)

    for _ in range(args.rounds):
        for route, token in (("/ws", args.token), ("/ws-public", None)):
            clients = []
            for _ in range(WS_MSG_CONNECTIONS):
                client, status, _ = await ws_open(args.gateway, route, token)
                if status != 101:
                    raise RuntimeError(f"WebSocket {route} answered {status}")
                clients.append(client)
            await asyncio.gather(*(pump(c, 500) for c in clients))  # warm-up
            per = args.messages // WS_MSG_CONNECTIONS
            cpu = proc_cpu_s(args.pid)
            wall = time.monotonic()
            await asyncio.gather(*(pump(c, per) for c in clients))
            wall = time.monotonic() - wall
            cpu = proc_cpu_s(args.pid) - cpu
            sent = per * WS_MSG_CONNECTIONS
            rounds.append({"route": route, "messages": sent, "cpu_s": cpu, "wall_s": wall,
                           "cpu_us_per_msg": cpu / sent * 1e6,
                           "rtt_us": wall / per * 1e6})
            for client in clients:
                client.close()
            await asyncio.sleep(0.5)

    def med(route: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds if r["route"] == route)

    return {"rounds": rounds, "connections": WS_MSG_CONNECTIONS,
            "auth_cpu_us": med("/ws", "cpu_us_per_msg"),
            "public_cpu_us": med("/ws-public", "cpu_us_per_msg"),
            "auth_rtt_us": med("/ws", "rtt_us"), "public_rtt_us": med("/ws-public", "rtt_us")}


async def phase_idle(args: argparse.Namespace) -> dict[str, Any]:
    """Open ``args.count`` authenticated sockets (bounded concurrency), keep them idle."""
    await asyncio.sleep(1)
    before = proc_status(args.pid)
    gate = asyncio.Semaphore(WS_OPEN_CONCURRENCY)
    clients: list[WSClient] = []
    failures: dict[str, int] = {}

    async def one() -> None:
        async with gate:
            try:
                client, status, _ = await ws_open(args.gateway, "/ws", args.token, timeout=60)
            except (OSError, TimeoutError) as error:
                failures[type(error).__name__] = failures.get(type(error).__name__, 0) + 1
                return
            if status != 101:
                failures[str(status)] = failures.get(str(status), 0) + 1
                client.close()
                return
            clients.append(client)

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.count)))
    open_s = time.monotonic() - started
    await asyncio.sleep(args.settle)
    after = proc_status(args.pid)
    alive = sum(1 for c in clients if not c.closed)
    # Still bridged end to end: a message on a few of the idle sockets comes back.
    sample = [c for c in clients if not c.closed][:20]
    echoed = 0
    for client in sample:
        try:
            if await asyncio.wait_for(client.request(b"still there?"), 10) == b"still there?":
                echoed += 1
        except (ConnectionError, TimeoutError):
            pass
    return {"requested": args.count, "opened": len(clients), "alive": alive,
            "failures": failures, "open_s": open_s, "settle_s": args.settle,
            "before": before, "after": after, "echo_sample": [echoed, len(sample)]}


PHASES = {"checks": phase_checks, "sse": phase_sse, "sse-gateway": phase_sse_gateway,
          "messages": phase_messages, "idle": phase_idle}


def cmd_client(args: argparse.Namespace) -> int:
    raise_nofile()
    loop = new_loop()
    asyncio.set_event_loop(loop)
    result = loop.run_until_complete(PHASES[args.phase](args))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Sockets still open (the idle phase) close with the process: no 10,000 close handshakes.
    os._exit(0)


# -- the re-authorization micro-benchmark ------------------------------------------------------


async def _time_calls(call: Any, calls: int, repeats: int) -> list[float]:
    results = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for _ in range(calls):
            await call()
        results.append((time.perf_counter_ns() - started) / calls / 1000)
    return results


async def _reauth(args: argparse.Namespace) -> dict[str, Any]:
    from gateway.app import create_app
    from gateway.forward.websocket_handshake import SocketAuth
    from gateway.identity.model import Identity
    from gateway.settings import load_settings

    app = create_app(load_settings(args.config))
    bridge = app.websocket
    verified = await app.resolver.verify_bearer(b"Bearer " + args.token.encode())
    if not isinstance(verified, Identity):
        raise RuntimeError(f"the token does not verify: {verified!r}")
    # Exactly what the bridge keeps for a socket opened with a JWT, and for one opened with a
    # session cookie (memory store: the session is re-read from the store every message).
    by_token = SocketAuth(identity=verified, session_key=None, session_id=None,
                          token_expires_at=verified.expires_at)
    record = await app.sessions.new_record(base_level="authenticated", user_id="alice")
    session = await app.sessions.create(record)
    by_cookie = SocketAuth(identity=record.identity(app.sessions.clock(), 3600),
                           session_key=session.key, session_id=session.id, token_expires_at=None)
    public = SocketAuth(identity=None, session_key=None, session_id=None, token_expires_at=None)
    for auth in (by_token, by_cookie):
        if await bridge._recheck(auth, "authenticated") is not None:
            raise RuntimeError("the re-check refuses a valid socket: nothing to time")

    result: dict[str, Any] = {"calls": args.calls, "repeats": args.repeats}
    for key, call in (
        ("jwt_us", lambda: bridge._recheck(by_token, "authenticated")),
        ("session_memory_us", lambda: bridge._recheck(by_cookie, "authenticated")),
        ("public_us", lambda: bridge._recheck(public, "public")),
        ("empty_await_us", _nothing),
    ):
        times = await _time_calls(call, args.calls, args.repeats)
        result[key] = min(times)
        result[key + "_median"] = statistics.median(times)
    if args.redis_url:
        result.update(await _reauth_redis(args, verified))
    return result


async def _nothing() -> None:
    """An empty coroutine: the scale against which the re-checks are timed."""
    return None


async def _reauth_redis(args: argparse.Namespace, verified: Any) -> dict[str, Any]:
    """A session-cookie socket on the Redis store, with the cache (default) and without.

    With ``store.websocket_cache`` (the default) the re-check reads the copy Redis invalidates
    (gateway/stores/resp_tracked.py); without it, every re-check is one GET round trip. Both the
    wall time per re-check and the gateway's own CPU time (``time.process_time``: the cost the
    target is about) are reported, for a lone message and for 64 in flight at once.
    """
    result: dict[str, Any] = {}
    for cached, label in ((True, "session_redis"), (False, "session_redis_uncached")):
        for key, value in (await _reauth_redis_store(args, cached)).items():
            result[key.replace("session_redis", label)] = value
    return result


async def _reauth_redis_store(args: argparse.Namespace, cached: bool) -> dict[str, Any]:
    from gateway.app import create_app
    from gateway.forward.websocket_handshake import SocketAuth
    from gateway.settings import load_settings
    from gateway.stores.redis import RedisStore

    store = RedisStore(args.redis_url, prefix="gwbench-reauth:", websocket_cache=cached)
    app = create_app(load_settings(args.config), store=store)
    try:
        bridge = app.websocket
        record = await app.sessions.new_record(base_level="authenticated", user_id="alice")
        session = await app.sessions.create(record)
        auth = SocketAuth(identity=record.identity(app.sessions.clock(), 3600),
                          session_key=session.key, session_id=session.id, token_expires_at=None)
        if await bridge._recheck(auth, "authenticated") is not None:
            raise RuntimeError("the re-check refuses a valid Redis session: nothing to time")
        # Uncached, a round trip each: fewer calls, same precision.
        calls = args.calls if cached else max(1, args.calls // 5)
        walls, cpus = [], []
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter_ns(), time.process_time_ns()
            for _ in range(calls):
                await bridge._recheck(auth, "authenticated")
            cpus.append((time.process_time_ns() - cpu) / calls / 1000)
            walls.append((time.perf_counter_ns() - wall) / calls / 1000)
        # Many sockets talking at once: 64 re-checks in flight share the client's pipelined
        # writes and reads. asyncio.gather wraps each in a task of its own, which a bridge does
        # not (it re-checks inside the socket's task): that share is timed on empty coroutines
        # and reported, so the re-check's own cost can be told from it.
        batch = [auth] * 64
        rounds = max(1, calls // len(batch))
        concurrent, gathered = [], []
        for _ in range(args.repeats):
            cpu = time.process_time_ns()
            for _ in range(rounds):
                await asyncio.gather(*(bridge._recheck(a, "authenticated") for a in batch))
            concurrent.append((time.process_time_ns() - cpu) / (rounds * len(batch)) / 1000)
            cpu = time.process_time_ns()
            for _ in range(rounds):
                await asyncio.gather(*(_nothing() for _ in batch))
            gathered.append((time.process_time_ns() - cpu) / (rounds * len(batch)) / 1000)
        await app.sessions.destroy(session)
        return {"session_redis_concurrent_cpu_us": min(concurrent),
                "session_redis_gather_us": min(gathered),
                "session_redis_cpu_us": min(cpus),
                "session_redis_cpu_us_median": statistics.median(cpus),
                "session_redis_wall_us": min(walls),
                "session_redis_wall_us_median": statistics.median(walls),
                "session_redis_calls": calls}
    finally:
        await store.aclose()


def cmd_reauth(args: argparse.Namespace) -> int:
    loop = new_loop()
    asyncio.set_event_loop(loop)
    print(json.dumps(loop.run_until_complete(_reauth(args))))
    return 0


# -- the orchestration (in bench.py's process) -------------------------------------------------


def run(bench: Any) -> dict[str, Any]:
    """Start the backend and a gateway, run every phase, stop both; the numbers for the report."""
    from bench import (  # bench/bench.py; its own process imports this module
        LOAD_CORE,
        PYTHON,
        SUT_CORE,
        free_port,
        gateway_config,
        log,
        wait_port,
        wrk_script,
    )

    limits = raise_nofile()  # inherited by everything started below
    tmp = bench.tmp / "streams"
    (tmp / "policies").mkdir(parents=True, exist_ok=True)
    (tmp / "policies" / "streams.yaml").write_text(STREAMS_POLICY)
    out: dict[str, Any] = {"notes": [], "nofile": list(limits)}
    # Each bridged socket is two descriptors in the gateway: without CAP_SYS_RESOURCE the hard
    # limit cannot be raised, so fewer sockets are opened and the RSS is extrapolated.
    fit = (limits[0] - FD_MARGIN) // FDS_PER_SOCKET
    count = min(WS_IDLE, fit)
    if count < WS_IDLE:
        out["notes"].append(
            f"RLIMIT_NOFILE is {limits[0]} (hard {limits[1]}) and cannot be raised here, and "
            f"each bridged socket takes {FDS_PER_SOCKET} descriptors in the gateway: "
            f"{count:,} sockets were opened and the RSS at {WS_IDLE:,} is extrapolated "
            "linearly from the measured per-socket growth.")

    def client(phase: str, *extra: str, timeout: float) -> dict[str, Any]:
        argv = [PYTHON, str(BENCH / "streams.py"), "client", phase,
                "--gateway", str(gw_port), "--backend", str(backend_port), "--pid", str(gw.pid),
                "--token", token, "--bad", bad, *extra]
        result_path = tmp / f"client-{phase}.json"
        with result_path.open("wb") as stdout, (tmp / "client.log").open("ab") as stderr:
            proc = bench.procs.start(f"streams-client-{phase}", argv, core=LOAD_CORE,
                                     stdout=stdout, stderr=stderr)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"streams client {phase} overran {timeout} s; stopping it")
            finally:
                bench.procs.stop(proc)
        text = result_path.read_text().strip()
        if proc.returncode != 0 or not text or text == "{}":
            raise RuntimeError(f"streams client {phase} failed (status {proc.returncode}; "
                               f"see {tmp / 'client.log'})")
        return dict(json.loads(text.splitlines()[-1]))

    token = bench.token()
    bad = bench.token(secret="x" * 64)
    gw = backend = None
    try:
        backend_port = free_port()
        blog = (tmp / "backend.log").open("ab")
        backend = bench.procs.start("streams-backend", [PYTHON, str(BENCH / "streams.py"),
                                                        "backend", "--port", str(backend_port)],
                                    core=LOAD_CORE, stdout=blog, stderr=blog)
        blog.close()
        wait_port(backend_port, backend, "streams backend")
        gw_port, admin_port = free_port(), free_port()
        config = gateway_config(tmp, "gateway-streams", gw_port, admin_port, backend_port)
        settings = json.loads(config.read_text())
        settings["policies_dir"] = str(tmp / "policies")
        config.write_text(json.dumps(settings, indent=2))
        gout = (tmp / "gateway.requests.log").open("ab")
        gerr = (tmp / "gateway.stderr").open("ab")
        gw = bench.procs.start("gateway-streams", [PYTHON, "-m", "gateway", "--config",
                                                   str(config), "run", "--log-level", "warning"],
                               core=SUT_CORE, stdout=gout, stderr=gerr, env=bench.env)
        gout.close()
        gerr.close()
        wait_port(gw_port, gw, "gateway (streams)", timeout=30)
        time.sleep(0.5)

        log("streams: correctness checks")
        checks = client("checks", timeout=60)["checks"]
        for what, shown, ok in checks:
            bench.checks.append(("gateway (streams)", what, shown, ok))
            if not ok:
                log(f"CHECK FAILED: streams {what}: got {shown}")
        log(f"streams: SSE latency, {SSE_EVENTS} events each, direct and through the gateway")
        out["sse"] = client("sse", "--events", str(SSE_EVENTS),
                            timeout=2 * SSE_EVENTS * SSE_INTERVAL_MS / 1000 + 60)
        out["sse"]["interval_ms"] = SSE_INTERVAL_MS
        out["sse"]["events"] = SSE_EVENTS
        if SSE_LOADED:
            # The same stream while wrk saturates the gateway's core (wrk on core 1).
            duration = int(SSE_EVENTS * SSE_INTERVAL_MS / 1000 / 2) + 4
            script = wrk_script(tmp, "streams-post", {
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            argv = ["wrk", "-t1", "-c64", f"-d{duration}s", "-s", str(script),
                    f"http://127.0.0.1:{gw_port}/api/chat"]
            log(f"streams: SSE through the gateway while wrk loads it ({duration} s)")
            with (tmp / "wrk.out").open("wb") as wout:
                wrk = bench.procs.start("wrk", argv, core=LOAD_CORE, stdout=wout,
                                        stderr=subprocess.STDOUT)
                try:
                    time.sleep(1)
                    loaded = client("sse-gateway", "--events", str(SSE_EVENTS // 2),
                                    timeout=duration + 60)
                    wrk.wait(timeout=duration + 30)
                finally:
                    bench.procs.stop(wrk)
            rps = re.search(r"Requests/sec:\s+([\d.]+)", (tmp / "wrk.out").read_text())
            out["sse"]["gateway_loaded"] = {**loaded["gateway"],
                                            "wrk_rps": float(rps.group(1)) if rps else None}
        log(f"streams: WebSocket messages, {WS_MSG_ROUNDS} rounds x {WS_MESSAGES} per route")
        out["messages"] = client("messages", "--messages", str(WS_MESSAGES), "--rounds",
                                 str(WS_MSG_ROUNDS), timeout=300)
        out["messages"]["messages"] = WS_MESSAGES
        log(f"streams: {count:,} idle WebSockets through the gateway")
        idle = client("idle", "--count", str(count), "--settle", "3", timeout=240)
        idle["target"] = WS_IDLE
        before, after = idle["before"]["VmRSS"] * 1024, idle["after"]["VmRSS"] * 1024
        opened = max(1, idle["opened"])
        idle["per_socket_bytes"] = (after - before) / opened
        idle["rss_at_target"] = (after if opened >= WS_IDLE else
                                 before + (after - before) / opened * WS_IDLE)
        idle["extrapolated"] = opened < WS_IDLE
        out["idle"] = idle
        log(f"streams: gateway RSS {before / 2**20:.0f} MiB -> {after / 2**20:.0f} MiB with "
            f"{idle['opened']:,} sockets ({idle['per_socket_bytes'] / 1024:.1f} KiB each)")
    finally:
        for proc in (gw, backend):
            if proc is not None:
                bench.procs.stop(proc)

    # In-process, on the gateway's core, with nothing else of ours running (but a Redis on the
    # load core for the Redis-store case, when redis-server is installed).
    log("streams: per-message re-authorization micro-benchmark")
    argv = [PYTHON, str(BENCH / "streams.py"), "reauth", "--config", str(config), "--token",
            token, "--calls", str(REAUTH_CALLS), "--repeats", str(REAUTH_REPEATS)]
    redis_port = bench.start_redis()
    if redis_port is not None:
        argv += ["--redis-url", f"redis://127.0.0.1:{redis_port}/13"]
    with (tmp / "reauth.json").open("wb") as rout, (tmp / "reauth.log").open("ab") as rerr:
        proc = bench.procs.start("streams-reauth", argv, core=SUT_CORE, stdout=rout, stderr=rerr,
                                 env=bench.env)
        try:
            proc.wait(timeout=120)
        finally:
            bench.procs.stop(proc)
    out["reauth"] = json.loads((tmp / "reauth.json").read_text())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    backend = sub.add_parser("backend")
    backend.add_argument("--port", type=int, required=True)
    client = sub.add_parser("client")
    client.add_argument("phase", choices=sorted(PHASES))
    for name in ("--gateway", "--backend", "--pid"):
        client.add_argument(name, type=int, required=True)
    client.add_argument("--token", required=True)
    client.add_argument("--bad", required=True)
    client.add_argument("--events", type=int, default=SSE_EVENTS)
    client.add_argument("--messages", type=int, default=WS_MESSAGES)
    client.add_argument("--rounds", type=int, default=WS_MSG_ROUNDS)
    client.add_argument("--count", type=int, default=WS_IDLE)
    client.add_argument("--settle", type=float, default=3.0)
    reauth = sub.add_parser("reauth")
    reauth.add_argument("--config", required=True)
    reauth.add_argument("--token", required=True)
    reauth.add_argument("--calls", type=int, default=REAUTH_CALLS)
    reauth.add_argument("--repeats", type=int, default=REAUTH_REPEATS)
    reauth.add_argument("--redis-url", default=None)
    args = parser.parse_args(argv)
    return {"backend": cmd_backend, "client": cmd_client, "reauth": cmd_reauth}[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
