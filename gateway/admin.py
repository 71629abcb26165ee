"""The admin listener (default 127.0.0.1:9090): ``/healthz``, ``/readyz``, ``/metrics``.

A separate ASGI app on its own port, served by a second uvicorn server in the same process and
event loop (see :mod:`gateway.server`): the public port never answers these paths itself —
there ``/metrics`` is just a path the policy decides on — and operators can keep the admin
port off the internet without any rule.

- ``/healthz``: 200 while the process serves (liveness).
- ``/readyz``: 200 only when the public server is up (start-up done, which includes a valid
  policy set: an invalid one refuses start, and a failed hot reload keeps the last good set),
  the session store answers and the backend accepts a TCP connection; otherwise 503 with the
  list of problems (readiness). While shutting down it answers 503, so a load balancer stops
  sending traffic before the public port closes.
- ``/metrics``: the Prometheus text format of this app's registry.
- ``GET /users/ID`` and ``POST /users/ID/forget``: GDPR, for ``gateway users show|forget`` on
  the memory store, whose data lives only inside this process. Personal data and erasure are
  answered only to a peer on this machine (a loopback address), so an admin port opened to a
  Prometheus server elsewhere does not expose them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from gateway.app import GatewayApp

READY_TIMEOUT: Final = 2.0
# The classic text format generate_latest() writes, which every Prometheus version reads.
METRICS_TYPE: Final = b"text/plain; version=0.0.4; charset=utf-8"


class AdminApp:
    def __init__(
        self, gateway: GatewayApp, *, serving: Callable[[], bool] = lambda: True,
        timeout: float = READY_TIMEOUT,
    ) -> None:
        self.gateway = gateway
        self.serving = serving
        self.timeout = timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # No lifespan (the public server runs the app's) and no WebSockets.
        path, method = scope["path"], scope["method"]
        if path.startswith("/users/"):
            await self._users(scope, path, method, send)
        elif path not in ("/healthz", "/readyz", "/metrics"):
            await _send(send, 404, _json({"error": "not_found"}))
        elif method not in ("GET", "HEAD"):
            await _send(send, 405, _json({"error": "method_not_allowed"}),
                        extra=[(b"allow", b"GET, HEAD")])
        elif path == "/healthz":
            await _send(send, 200, _json({"status": "ok"}))
        elif path == "/readyz":
            problems = await self.problems()
            if problems:
                await _send(send, 503, _json({"status": "unavailable", "problems": problems}))
            else:
                await _send(send, 200, _json({"status": "ready"}))
        else:
            body = self.gateway.metrics.render()
            await _send(send, 200, (METRICS_TYPE, body))

    async def _users(self, scope: dict[str, Any], path: str, method: str, send: Any) -> None:
        from gateway.identity.model import is_valid_user_id
        from gateway.users import forget, show

        client = scope.get("client")
        if not client or not _is_loopback(client[0]):
            await _send(send, 403, _json({"error": "forbidden",
                                          "message": "Only local peers may read user data."}))
            return
        rest = path[len("/users/"):]
        action = "forget" if rest.endswith("/forget") else "show"
        user_id = rest[: -len("/forget")] if action == "forget" else rest
        expected = "POST" if action == "forget" else "GET"
        if method != expected:
            await _send(send, 405, _json({"error": "method_not_allowed"}),
                        extra=[(b"allow", expected.encode())])
            return
        if not is_valid_user_id(user_id):
            await _send(send, 400, _json({"error": "bad_request",
                                          "message": "A user id is 1-255 visible ASCII."}))
            return
        gateway = self.gateway
        keys = gateway.otp.keys if gateway.otp is not None else None
        if action == "forget":
            result = await forget(gateway.store, user_id, otp=keys)
        else:
            result = await show(gateway.store, user_id, otp=keys, clock=gateway.clock)
        await _send(send, 200, _json(result))

    async def problems(self) -> list[str]:
        """Why the gateway cannot serve now; empty when ready. Checks run side by side."""
        problems = [] if self.serving() else [
            "gateway: the public listener is not serving (starting or shutting down)"]
        store, upstream = await asyncio.gather(self._store(), self._upstream())
        return problems + store + upstream

    async def _store(self) -> list[str]:
        try:
            # GatewayApp.ready() pings the store; its wording never includes the store URL,
            # which may hold a password.
            return await asyncio.wait_for(self.gateway.ready(), self.timeout)
        except TimeoutError:
            return [f"store: no answer within {self.timeout:g} s"]
        except Exception as error:  # A readiness probe answers 503, never 500.
            return [f"store: the check failed ({type(error).__name__})"]

    async def _upstream(self) -> list[str]:
        upstream = self.gateway.settings.upstream
        where = f"{upstream.host}:{upstream.port}"
        try:
            # A TCP connect, not a request: it must not show up in the backend's traffic or
            # depend on which paths the backend serves.
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(upstream.host, upstream.port),
                min(self.timeout, upstream.connect_timeout))
        except TimeoutError:
            return [f"upstream: no TCP connection to {where} within {self.timeout:g} s"]
        except OSError as error:
            # errno, not the message: asyncio's own message repeats the address.
            reason = os.strerror(error.errno) if error.errno else type(error).__name__
            return [f"upstream: cannot connect to {where} ({reason})"]
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return []


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _json(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    return b"application/json", json.dumps(payload, separators=(",", ":")).encode("utf-8")


async def _send(
    send: Any, status: int, content: tuple[bytes, bytes],
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    content_type, body = content
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
