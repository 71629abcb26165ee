"""Serving the app with uvicorn, with the flags and the protocol the gateway needs.

One process, one event loop, two uvicorn servers: the public one and the admin listener
(:mod:`gateway.admin`). Sharing the loop means ``/metrics`` reads the counters the data plane
writes without locks or inter-process plumbing, and ``/readyz`` sees the very store client the
requests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from gateway.admin import AdminApp
from gateway.app import GatewayApp
from gateway.server_protocol import GatewayHttpProtocol, GatewayWebSocketProtocol


def freeze_heap() -> None:
    """Move everything alive after start-up out of the garbage collector's sight.

    Modules, classes, settings and the app live as long as the process; without this, every
    older-generation collection walks them again (pauses that show in the p99 under load).
    ``gc.freeze`` moves every object tracked now into a permanent generation the collector
    never scans; they are still freed normally by reference counting. Measured: GC fell from
    ~3 to ~1.5 µs per request (bench/RESULTS.md).
    """
    gc.collect()
    gc.freeze()


class GatewayServer(uvicorn.Server):
    """uvicorn's server, freezing the start-up heap once the app has started."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        freeze_heap()


def uvicorn_config(app: GatewayApp, *, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": GatewayHttpProtocol,
        "ws": GatewayWebSocketProtocol,
        # Frames above the gateway's message limit are refused by the server with 1009.
        "ws_max_size": app.settings.max_ws_message_bytes,
        # No per-message deflate: compressed frames hide their size until inflated.
        "ws_per_message_deflate": False,
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


class AdminServer(uvicorn.Server):
    """The admin listener's server: it lives exactly as long as the public server."""

    def __init__(self, config: uvicorn.Config, leader: uvicorn.Server) -> None:
        super().__init__(config)
        self.leader = leader

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # SIGINT and SIGTERM belong to the public server (uvicorn installs one handler per
        # signal, so two servers would steal it from each other); this one follows it.
        yield

    async def on_tick(self, counter: int) -> bool:
        return await super().on_tick(counter) or self.leader.should_exit


def admin_config(app: AdminApp, *, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, http="httptools", ws="none", lifespan="off",
        access_log=False, server_header=False, date_header=False, proxy_headers=False,
        log_config=None,
    )


def serve(app: GatewayApp, *, host: str, port: int) -> None:
    """Serve the public port and, unless ``admin.enabled`` is false, the admin listener."""
    public = GatewayServer(uvicorn_config(app, host=host, port=port))
    admin: AdminServer | None = None
    admin_socket: socket.socket | None = None
    settings = app.settings.ops.admin
    if settings.enabled:
        config = admin_config(
            AdminApp(app, serving=lambda: public.started and not public.should_exit),
            host=settings.host, port=settings.port)
        # Bound before the loop starts: a taken admin port stops the process (exit 3) before
        # the public port opens, instead of leaving a gateway that health checks cannot see.
        admin_socket = config.bind_socket()
        admin = AdminServer(config, public)
    with asyncio.Runner(loop_factory=public.config.get_loop_factory()) as runner:
        runner.run(_serve_all(app, public, admin, admin_socket))
    if not public.started:
        raise SystemExit(1)


async def _serve_all(
    app: GatewayApp, public: uvicorn.Server, admin: AdminServer | None,
    admin_socket: socket.socket | None,
) -> None:
    loop = asyncio.get_running_loop()
    # SIGHUP reloads the policies, as nginx and HAProxy operators expect.
    loop.add_signal_handler(signal.SIGHUP, app.reloader.trigger)
    admin_task = None
    if admin is not None and admin_socket is not None:
        admin_task = asyncio.create_task(admin.serve(sockets=[admin_socket]))
    try:
        await public.serve()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        if admin is not None and admin_task is not None:
            admin.should_exit = True
            await admin_task
