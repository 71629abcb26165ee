"""The ASGI application: one object that owns the pipeline's parts for the process's life.

``create_app(settings)`` wires the stages together; the lifespan opens what needs an event loop
(the upstream pool, JWKS fetches, the log flusher) and closes it again.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.errors import ConfigError
from gateway.forward.http import HttpProxy
from gateway.forward.upstream import UpstreamPool
from gateway.identity.jwt import JWTVerifier
from gateway.identity.resolver import Resolver
from gateway.observe import RequestLog
from gateway.policy.loader import load_policies
from gateway.policy.model import PolicySet
from gateway.rewrite.headers import HeaderRewriter
from gateway.settings import Settings

log = logging.getLogger("gateway")


class GatewayApp:
    def __init__(self, settings: Settings, policies: PolicySet) -> None:
        self.settings = settings
        self.policies = policies
        self.verifier = JWTVerifier(settings.jwt)
        self.request_log = RequestLog(enabled=settings.access_log)
        upstream = settings.upstream
        self.pool = UpstreamPool(
            upstream.host,
            upstream.port,
            connect_timeout=upstream.connect_timeout,
            read_timeout=upstream.read_timeout,
            body_timeout=upstream.body_timeout,
            max_idle=upstream.max_idle,
        )
        self.rewriter = HeaderRewriter(
            upstream_host=upstream.host_header,
            names=settings.header_names,
            cookie_names=settings.gateway_cookie_names,
            forward_authorization=settings.forward_authorization,
            forward_gateway_cookie=settings.forward_gateway_cookie,
            trusted_proxies=settings.trusted_proxies,
        )
        self.http = HttpProxy(
            policies=policies,
            resolver=Resolver(self.verifier),
            rewriter=self.rewriter,
            pool=self.pool,
            request_log=self.request_log,
            max_body_bytes=settings.max_body_bytes,
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await self._refuse_websocket(receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    @staticmethod
    async def _refuse_websocket(receive: Any, send: Any) -> None:
        # The WebSocket bridge with per-message re-authorization is not built yet; until it is,
        # every handshake is refused before the upgrade (uvicorn answers 403).
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # reported to the server, which exits non-zero
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        self.request_log.start()
        await self.verifier.start()
        log.info(
            "gateway ready",
            extra={
                "event": {
                    "upstream": self.settings.upstream.url,
                    "rules": len(self.policies.rules),
                    "mode": self.settings.mode,
                }
            },
        )

    async def shutdown(self) -> None:
        await self.pool.aclose()
        await self.verifier.aclose()
        await self.request_log.stop()


def create_app(settings: Settings, policies: PolicySet | None = None) -> GatewayApp:
    """Build the app; raises :class:`ConfigError` (listing every problem) on a bad setup."""
    if policies is None:
        policies = load_policies(settings.policies_dir)
    if not isinstance(policies, PolicySet):  # pragma: no cover - defensive
        raise ConfigError(["policies: not a policy set"])
    return GatewayApp(settings, policies)
