"""The ASGI application: one object that owns the pipeline's parts for the process's life.

``create_app(settings)`` wires the stages together; the lifespan opens what needs an event loop
(the upstream pool, JWKS fetches, the log flusher) and closes it again.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import httpx

from gateway.endpoints import AuthEndpoints
from gateway.errors import ConfigError
from gateway.forward.http import HttpProxy
from gateway.forward.upstream import UpstreamPool
from gateway.identity.jwt import JWTVerifier
from gateway.identity.resolver import Resolver
from gateway.identity.session import SessionManager, SessionSettings
from gateway.observe import RequestLog
from gateway.otp.service import OtpService
from gateway.otp.wiring import build_directory, build_senders
from gateway.policy.loader import load_policies
from gateway.policy.model import PolicySet
from gateway.rewrite.headers import HeaderRewriter
from gateway.settings import Settings
from gateway.stores.base import Clock, Store
from gateway.stores.memory import MemoryStore

log = logging.getLogger("gateway")


def build_store(settings: Settings, clock: Clock) -> Store:
    if settings.store_url.startswith("memory://"):
        return MemoryStore(clock=clock)
    raise ConfigError([
        f"store: option 'store.url' must be memory:// in this version but it's configured as "
        f"'{settings.store_url.split('@')[-1]}'"
    ])


class GatewayApp:
    def __init__(
        self, settings: Settings, policies: PolicySet, *, clock: Clock = time.time,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.policies = policies
        self.clock = clock
        # One shared client for every control-plane call (JWKS, CRM, SMS APIs).
        self.http_client = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        self.verifier = JWTVerifier(settings.jwt, http_client=self.http_client, clock=clock)
        self.store = store if store is not None else build_store(settings, clock)
        self.sessions = SessionManager(
            self.store,
            SessionSettings(
                idle_timeout=settings.idle_timeout,
                absolute_timeout=settings.absolute_timeout,
                cookie_name=settings.session_cookie_name,
                secure=not settings.dev,
            ),
            clock=clock,
        )
        self.resolver = Resolver(
            self.verifier, self.sessions, allowed_origins=frozenset(settings.allowed_origins)
        )
        self.otp = self._build_otp()
        self.endpoints = AuthEndpoints(self.resolver, self.otp)
        self.request_log = RequestLog(enabled=settings.access_log)
        upstream = settings.upstream
        self.pool = UpstreamPool(
            upstream.host,
            upstream.port,
            connect_timeout=upstream.connect_timeout,
            read_timeout=upstream.read_timeout,
            body_timeout=upstream.body_timeout,
            max_idle=upstream.max_idle,
            idle_ttl=upstream.idle_ttl,
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
            resolver=self.resolver,
            rewriter=self.rewriter,
            pool=self.pool,
            request_log=self.request_log,
            max_body_bytes=settings.max_body_bytes,
            control=self.endpoints,
        )

    def _build_otp(self) -> OtpService | None:
        directory = build_directory(self.settings.delivery, self.http_client)
        if directory is None:
            return None
        senders = build_senders(self.settings.delivery, self.http_client)
        # The code hash key must be shared by every replica; one process on the memory store
        # can make its own, since its challenges die with it anyway.
        hash_key = self.settings.otp_hash_key or secrets.token_bytes(32)
        return OtpService(self.settings.otp, self.store, directory, senders, hash_key,
                          clock=self.clock)

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
        if self.otp is not None:
            await self.otp.drain()
        await self.pool.aclose()
        await self.verifier.aclose()
        await self.store.aclose()
        await self.http_client.aclose()
        await self.request_log.stop()


def create_app(
    settings: Settings, policies: PolicySet | None = None, *, clock: Clock = time.time,
    store: Store | None = None,
) -> GatewayApp:
    """Build the app; raises :class:`ConfigError` (listing every problem) on a bad setup."""
    if policies is None:
        policies = load_policies(settings.policies_dir)
    return GatewayApp(settings, policies, clock=clock, store=store)
