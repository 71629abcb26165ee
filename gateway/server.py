"""Serving the app with uvicorn, with the flags and the one protocol fix the gateway needs."""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.app import GatewayApp


class TargetPreservingProtocol(HttpToolsProtocol):
    """httptools' protocol, but ``raw_path`` is the request target exactly as sent.

    uvicorn parses the target with ``httptools.parse_url``, which turns the absolute form
    ``GET http://evil.example/admin`` into the path ``/admin`` and drops a ``#fragment``. The
    gateway must see what the client sent to refuse both (CONTRACT §6), so the path part of the
    raw target (everything before ``?``) replaces ``raw_path``; the canonical-path check then
    rejects anything that is not a plain origin-form path.
    """

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The ASGI task created by the parent has not run yet (it starts at the next loop
        # iteration), so adjusting the scope here is seen by the app.
        cycle = getattr(self, "cycle", None)
        scope = getattr(self, "scope", None)
        if scope is not None and cycle is not None and cycle.scope is scope:
            scope["raw_path"] = bytes(self.url).split(b"?", 1)[0]


def uvicorn_config(app: GatewayApp, *, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": TargetPreservingProtocol,
        "ws": "auto",
        "lifespan": "on",
        # Our own JSON request log replaces uvicorn's, which prints query strings verbatim.
        "access_log": False,
        "server_header": False,
        "date_header": False,
        # uvicorn would trust X-Forwarded-For from 127.0.0.1; the gateway applies its own
        # trusted-proxy rule instead (DESIGN.md, "Security facts").
        "proxy_headers": False,
        "log_config": None,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve(app: GatewayApp, *, host: str, port: int) -> None:
    server = uvicorn.Server(uvicorn_config(app, host=host, port=port))
    server.run()
    if not server.started:
        raise SystemExit(1)
