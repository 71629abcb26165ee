"""The HTTP data plane: identify → decide → rewrite → forward, as one raw ASGI handler.

Raw ASGI instead of Starlette responses on this path: Starlette's StreamingResponse alone
costs ~230 µs per request under uvicorn (DESIGN.md), more than the whole forward should.
Refusals are exceptions from :mod:`gateway.errors`, rendered in one place; a request that is
refused is never sent upstream.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from gateway.assertion import AssertionSigner
from gateway.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    StoreUnavailable,
    render,
)
from gateway.forward.relay import relay
from gateway.forward.request_body import request_body
from gateway.forward.upstream import UpstreamPool
from gateway.identity.model import Identity
from gateway.identity.resolver import Resolution, Resolver
from gateway.metrics import RequestMetrics
from gateway.observe import RequestLog
from gateway.policy.decide import decide
from gateway.policy.model import PolicySet
from gateway.policy.paths import canonical_path, encode_path
from gateway.rewrite.headers import HeaderRewriter

Scope = dict[str, Any]
Message = dict[str, Any]

log = logging.getLogger("gateway.forward")

_REFUSED_METHODS = frozenset({"TRACE", "CONNECT"})
# Larger header blocks are refused rather than forwarded: backends cap them too (nginx at 8 KiB
# per line), and a gateway that passes what its backend refuses invites parser disagreements.
MAX_HEADER_BYTES = 64 * 1024


@dataclass(slots=True)
class RequestInfo:
    """What the request log needs, filled in as the pipeline goes."""

    method: str = "-"
    path: str = "-"
    rule: str | None = None
    decision: str = "refuse"
    level: str | None = None
    error: str | None = None
    reason: str | None = None
    label: str = "-"  # The rule as a metric label (gateway/metrics.py says which values).
    user: str | None = None  # Logged as ``log.user_id`` says: hashed by default.
    would: str | None = None  # A shadow rule's refusal, had it been enforced.
    sent: float = 0.0  # perf_counter() when the request went upstream.
    upstream: float | None = None  # Seconds from then to the response head.
    # A session created or upgraded while resolving: the client gets it even on a refusal,
    # because the old id is already dead.
    set_cookie: bytes | None = None
    status: int | None = None  # Set when the response head is sent.


class HttpProxy:
    def __init__(
        self,
        *,
        policies: PolicySet,
        resolver: Resolver,
        rewriter: HeaderRewriter,
        pool: UpstreamPool,
        request_log: RequestLog,
        max_body_bytes: int,
        control: Any = None,
        metrics: RequestMetrics | None = None,
        assertion: AssertionSigner | None = None,
    ) -> None:
        self.control = control
        self.metrics = metrics or RequestMetrics()
        self.assertion = assertion
        self.policies = policies
        self.resolver = resolver
        self.rewriter = rewriter
        self.pool = pool
        self.request_log = request_log
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        info = RequestInfo(method=scope["method"])
        try:
            await self._handle(scope, receive, send, info)
        except GatewayError as error:
            info.error, info.reason = error.code, error.reason
            if info.status is None:
                if info.set_cookie is not None:
                    error.headers["Set-Cookie"] = info.set_cookie.decode("latin-1")
                await _send_error(send, error, info)
        except Exception:
            # A bug, by CONTRACT §5. Log the type only (a traceback can quote request data) and
            # answer with a generic body, never a stack trace.
            log.error("unhandled error while proxying", exc_info=True)
            info.error = "internal_error"
            if info.status is None:
                await _send_error(send, GatewayError(), info)
        finally:
            ended = time.perf_counter()
            upstream = info.upstream
            # 500 when no response started: the server answers that on the app's behalf.
            status = info.status or 500
            # The gateway's own share: until the request went upstream, or all of a refusal.
            self.metrics.observe(info.label, info.decision, status,
                                 (info.sent or ended) - started, upstream)
            self.request_log.request(
                info.method, info.path, info.rule, info.decision, info.level, info.user, status,
                info.error, info.reason, ended - started, upstream, info.would)

    async def _handle(self, scope: Scope, receive: Any, send: Any, info: RequestInfo) -> None:
        path = canonical_path(scope.get("raw_path") or scope["path"].encode("latin-1"))
        info.path = path
        if path == "/auth" or path.startswith("/auth/"):
            # The reserved prefix is the gateway's own; nothing under it is ever forwarded.
            info.rule, info.decision, info.label = "/auth", "control", "/auth"
            if self.control is None:
                raise NotFound()
            scope["gateway.path"] = path

            async def tracking_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    info.status = message["status"]
                await send(message)

            await self.control(scope, receive, tracking_send)
            info.error, info.reason = scope.get("gateway.error", (None, None))
            return
        method: str = info.method
        if method in _REFUSED_METHODS:
            # TRACE echoes the request (cookies included) back; CONNECT asks for a tunnel.
            raise MethodNotAllowed("This method is not forwarded.")
        client = scope.get("client")
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        # The rewrite walks the headers before anything is decided, once, and so collects what
        # every stage below reads; what it builds is thrown away on a refusal.
        request = self.rewriter.scan(headers, client_ip=client[0] if client else None,
                                     scheme=scope.get("scheme", "http"))
        if request.size > MAX_HEADER_BYTES:
            raise BadRequest("The request headers are too large.", reason="headers_too_large")
        rule = self.policies.match(method, path, False)
        info.rule = rule.name if rule is not None else None
        info.label = rule.name if rule is not None else "(default)"
        require = rule.require if rule is not None else self.policies.default
        shadow = rule is not None and rule.mode == "shadow"

        if require == "deny" and not shadow:
            resolution = Resolution()
        else:
            # Only an enforced anonymous rule hands out sessions; a shadow rule observes.
            create_anonymous = require == "anonymous" and not shadow
            cached = None if request.cookie else self.resolver.resolve_cached(
                request.authorization, request.authorizations, create_anonymous=create_anonymous)
            if cached is None:
                cached = await self._identify(scope, headers, require, create_anonymous)
            resolution = self._settle(cached, require, info)
        info.set_cookie = resolution.set_cookie
        identity: Identity | GatewayError | None = resolution.error or resolution.identity
        refusal = self._refusal(require, identity)
        if refusal is not None:
            if not shadow:
                raise refusal
            info.decision, info.would = "shadow-allow", refusal.code
            # A shadow rule only observes: the request passes with whatever identity is valid.
        else:
            info.decision = "allow"
        trusted = identity if isinstance(identity, Identity) else None

        upstream_headers = request.upstream
        if trusted is not None:
            upstream_headers.extend(self.rewriter.identity_headers(trusted))
            info.level, info.user = trusted.level, trusted.user_id
            if self.assertion is not None:
                # Cached per identity: a dict lookup, not an ES256 signature, per request.
                upstream_headers.append(
                    (self.assertion.header, self.assertion.for_identity(trusted)))
        body, content_length = await request_body(
            receive, request, rule, trusted, self.max_body_bytes)
        target = encode_path(path)
        query = scope.get("query_string")
        if query:
            target += b"?" + query
        info.sent = time.perf_counter()
        response = await self.pool.request(
            method.encode("ascii"), target, upstream_headers, body, content_length=content_length
        )
        info.upstream = time.perf_counter() - info.sent
        await relay(response, receive, send, resolution.set_cookie, info)

    async def _identify(
        self,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        require: str,
        create_anonymous: bool,
    ) -> Resolution:
        """The resolution when :meth:`Resolver.resolve_cached` cannot answer without an await."""
        try:
            return await self.resolver.resolve(
                headers,
                method=scope["method"],
                scheme=scope.get("scheme", "http"),
                create_anonymous=create_anonymous,
            )
        except StoreUnavailable:
            if require == "public":
                # A public route needs no identity, so an unreachable store costs it nothing.
                return Resolution()
            raise

    @staticmethod
    def _settle(resolution: Resolution, require: str, info: RequestInfo) -> Resolution:
        if resolution.error is not None:
            info.reason = resolution.error.reason
            if require == "public":
                # Public routes ignore bad credentials instead of refusing them (CONTRACT §4).
                return Resolution()
        return resolution

    @staticmethod
    def _refusal(
        require: str, identity: Identity | GatewayError | None
    ) -> GatewayError | None:
        if require == "deny":
            return Forbidden()
        if isinstance(identity, GatewayError):
            return identity
        decision = decide(require, identity.level if identity is not None else None)
        if decision.allowed:
            return None
        assert decision.error is not None  # noqa: S101 - decide() pairs refusals with an error
        return decision.error()


async def _send_error(send: Any, error: GatewayError, info: RequestInfo) -> None:
    status, headers, body = render(error)
    info.status = status
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
