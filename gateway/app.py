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

from gateway.assertion import JWKS_PATH, AssertionSigner, jwks_handler
from gateway.endpoints import AuthEndpoints
from gateway.errors import ConfigError, StoreUnavailable
from gateway.forward.http import HttpProxy
from gateway.forward.upstream import UpstreamPool
from gateway.forward.websocket import WebSocketBridge
from gateway.identity.jwt import JWTVerifier
from gateway.identity.resolver import Resolver
from gateway.identity.session import SessionManager, SessionSettings
from gateway.metrics import Metrics
from gateway.observe import RequestLog, configure_user_ids
from gateway.otp.metered import MeteredOtpService
from gateway.otp.service import OtpService
from gateway.otp.wiring import build_directory, build_senders
from gateway.policy.loader import load_policies
from gateway.policy.model import PolicySet
from gateway.policy.reload import PolicyReloader
from gateway.rewrite.headers import HeaderRewriter
from gateway.settings import Settings
from gateway.stores.base import Clock, Store
from gateway.stores.memory import MemoryStore
from gateway.stores.redis import RedisStore

log = logging.getLogger("gateway")


def build_store(settings: Settings, clock: Clock) -> Store:
    """The store named by ``store.url``: memory:// (one process) or redis:// / rediss://."""
    scheme = settings.store_url.partition("://")[0]
    if scheme == "memory":
        return MemoryStore(clock=clock)
    if scheme in ("redis", "rediss"):
        # Redis keeps time itself (native TTLs), so ``clock`` does not apply to it.
        return RedisStore(settings.store_url, prefix=settings.store_prefix,
                          timeout=settings.store_timeout,
                          websocket_cache=settings.store_websocket_cache)
    raise ConfigError([
        f"store: option 'store.url' must be memory://, redis://… or rediss://… but it's "
        f"configured as '{scheme}://…'"
    ])


class GatewayApp:
    def __init__(
        self, settings: Settings, policies: PolicySet, *, clock: Clock = time.time,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.policies = policies
        self.clock = clock
        # Per app, not prometheus-client's global registry: tests build several apps.
        self.metrics = Metrics()
        self.metrics.policy_rules.set(len(policies.rules))
        self.reloader = PolicyReloader(settings.policies_dir, self.set_policies, self.metrics)
        ops = settings.ops
        configure_user_ids(ops.log_user_id, ops.user_hash_salt)
        self.assertion = (AssertionSigner(ops.assertion, clock=clock)
                          if ops.assertion.enabled else None)
        # One shared client for every control-plane call (JWKS, CRM, SMS APIs).
        self.http_client = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        self.verifier = JWTVerifier(settings.jwt, http_client=self.http_client, clock=clock)
        self.store = store if store is not None else build_store(settings, clock)
        if isinstance(self.store, RedisStore) and self.store.websocket_cache is not None:
            self.metrics.watch_session_cache(self.store.websocket_cache)
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
            self.verifier, self.sessions, allowed_origins=frozenset(settings.allowed_origins),
            on_token_error=self.metrics.jwt_failure,
        )
        self.otp = self._build_otp()
        self.endpoints = AuthEndpoints(self.resolver, self.otp, extra={
            (JWKS_PATH, "GET"): jwks_handler(self.assertion)})
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
            also_strip=(ops.assertion.header,),
        )
        self.endpoints.rewriter = self.rewriter
        self.http = HttpProxy(
            policies=policies,
            resolver=self.resolver,
            rewriter=self.rewriter,
            pool=self.pool,
            request_log=self.request_log,
            max_body_bytes=settings.max_body_bytes,
            control=self.endpoints,
            metrics=self.metrics.requests,
            assertion=self.assertion,
        )
        self.websocket = WebSocketBridge(
            # Read through the HTTP proxy so a policy reload reaches both at once.
            policies=lambda: self.http.policies,
            resolver=self.resolver,
            rewriter=self.rewriter,
            upstream_url=upstream.url,
            request_log=self.request_log,
            max_message_bytes=settings.max_ws_message_bytes,
            allowed_origins=frozenset(settings.allowed_origins),
        )

    def _build_otp(self) -> OtpService | None:
        directory = build_directory(self.settings.delivery, self.http_client)
        if directory is None:
            return None
        senders = build_senders(self.settings.delivery, self.http_client)
        # The code hash key must be shared by every replica; one process on the memory store
        # can make its own, since its challenges die with it anyway.
        hash_key = self.settings.otp_hash_key or secrets.token_bytes(32)
        return MeteredOtpService(self.settings.otp, self.store, directory, senders, hash_key,
                                 clock=self.clock, metrics=self.metrics)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await self.websocket(scope, *self.metrics.watch_websocket(receive, send))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

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

    async def ready(self) -> list[str]:
        """What keeps this process from serving requests now (empty when ready), for /readyz."""
        problems: list[str] = []
        try:
            await self.store.ping()
        except StoreUnavailable:
            problems.append("store: the session store is unreachable")
        return problems

    def set_policies(self, policies: PolicySet) -> None:
        """Swap the active policy set (hot reload). One assignment on the event loop: a request
        in flight keeps the rule it matched, the next one sees the new set."""
        self.policies = policies
        self.http.policies = policies
        self.metrics.policy_rules.set(len(policies.rules))

    async def startup(self) -> None:
        self.request_log.start()
        self.reloader.start()
        await self.verifier.start()
        # A store that is down at start is not fatal: Redis may come back, and until it does
        # requests that need it get 503 (and /readyz says why) instead of a crash loop.
        for problem in await self.ready():
            log.warning("gateway starting without its store",
                        extra={"event": {"problem": problem}})
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
        await self.reloader.stop()
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
