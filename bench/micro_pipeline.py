"""Micro-benchmark of the gateway's own per-request work on the JWT path, without sockets.

The HTTP proxy (identify, policy, rewrite, request log, relay) runs exactly as in production,
built from a production-mode configuration like the one ``make bench`` uses; only the upstream
pool is replaced by one that answers at once with a canned 50-byte JSON, and ``send`` is a
no-op. What it measures is therefore the pipeline's Python cost per request, free of kernel
time and of the VM's run-to-run noise at the 100 µs scale (bench/RESULTS.md): use it to compare
two versions of the pipeline, and ``make bench`` for what a client sees.

    .venv/bin/python bench/micro_pipeline.py [requests]
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt

from gateway.app import create_app
from gateway.forward.upstream_response import UpstreamResponse
from gateway.settings import load_settings

SECRET = "micro-benchmark-secret-with-enough-bytes-for-hs256"  # noqa: S105 - a test key
ISSUER = "https://issuer.bench"
BODY = b'{"user_id":"mallory","message":"hi there"}'
ANSWER = b'{"ok":true,"reply":"hello","user":"alice-000000"}'


class CannedPool:
    """Answers every request with the same small JSON, as nginx does in ``make bench``."""

    async def request(self, method: bytes, target: bytes, headers: Any, body: Any = b"",
                      *, content_length: int | None = None) -> UpstreamResponse:
        response = UpstreamResponse(
            200, [(b"server", b"nginx"), (b"content-type", b"application/json"),
                  (b"content-length", b"%d" % len(ANSWER)), (b"connection", b"keep-alive")],
            len(ANSWER), False, True, None)  # type: ignore[arg-type]
        response._buf.append(ANSWER)
        response._eof = True
        response._conn = None
        return response

    async def aclose(self) -> None:
        pass


def build(tmp: Path) -> Any:
    policies = tmp / "policies"
    policies.mkdir()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench import POLICY  # the bench's own 5-rule policy

    (policies / "bench.yaml").write_text(POLICY.format(path="/api/chat"))
    config = {
        "mode": "production", "upstream": {"url": "http://127.0.0.1:9"},
        "policies_dir": str(policies), "log": {"access": True},
        "jwt": {"issuers": [{"issuer": ISSUER, "keys": [
            {"kid": "k1", "alg": "HS256", "secret_env": "MICRO_SECRET"}]}]},
    }
    path = tmp / "gw.yaml"
    path.write_text(json.dumps(config))
    os.environ["MICRO_SECRET"] = SECRET
    os.environ["GATEWAY_CONFIG"] = str(path)
    app = create_app(load_settings())
    app.http.pool = CannedPool()
    return app


async def best_per_call(
    call: Callable[[], Awaitable[object]], count: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds per call, best of 5 rounds of ``count``, after a warm-up and with the heap frozen
    out of the garbage collector, as the server does after start-up."""
    for _ in range(2000):
        await call()
    gc.collect()
    gc.freeze()
    best = float("inf")
    for _ in range(5):
        started = clock()
        for _ in range(count):
            await call()
        best = min(best, (clock() - started) / count)
    return best


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = build(Path(tmp))
        token = jwt.encode({"sub": "alice-000000", "iss": ISSUER, "exp": int(time.time()) + 3600},
                           SECRET, algorithm="HS256", headers={"kid": "k1"})
        headers = [(b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {token}".encode()),
                   (b"x-user-id", b"mallory"), (b"content-type", b"application/json"),
                   (b"content-length", b"%d" % len(BODY))]
        message = {"type": "http.request", "body": BODY, "more_body": False}

        async def receive() -> dict[str, Any]:
            return message

        sent: list[int] = []

        async def send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                sent.append(msg["status"])

        def scope() -> dict[str, Any]:
            return {"type": "http", "method": "POST", "path": "/api/chat",
                    "raw_path": b"/api/chat", "query_string": b"", "headers": list(headers),
                    "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
                    "scheme": "http", "http_version": "1.1", "root_path": "",
                    "asgi": {"version": "3.0", "spec_version": "2.3"}, "state": {}}

        app.request_log.flush = lambda: app.request_log._lines.clear()  # no file writes
        best = await best_per_call(lambda: app(scope(), receive, send), count)
        if set(sent) != {200}:
            raise SystemExit(f"the pipeline answered {sorted(set(sent))}, not only 200")
        print(f"pipeline: {best * 1e6:.2f} µs per request (best of 5 × {count})")


if __name__ == "__main__":
    import uvloop

    # The event loop the gateway serves on.
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
