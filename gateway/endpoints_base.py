"""What every ``/auth`` endpoint shares: JSON and error responses, the error wrapper, and the
request helpers.

:class:`EndpointBase` declares the state the endpoints work with (resolver, sessions, OTP
service, rewriter; :class:`gateway.endpoints.AuthEndpoints` sets it) and the helpers both the
session and the OTP endpoints call: reading the session cookie, the bearer token and the
capped JSON body, the Origin check, the client address, and the login that both
``POST /auth/session`` and ``POST /auth/otp/send`` may perform. They are apart so that each
endpoint module reads as its endpoints alone.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import (
    GatewayError,
    OriginForbidden,
    PayloadTooLarge,
    UnsupportedMediaType,
    render,
)
from gateway.identity.model import AUTHENTICATED, Identity
from gateway.identity.resolver import Resolver, read_credentials
from gateway.identity.session import Session, SessionManager
from gateway.observe import audit, user_hash
from gateway.otp.service import OtpService
from gateway.rewrite.body import is_json_content_type, load_object
from gateway.rewrite.headers import HeaderRewriter

Handler = Callable[[Request], Awaitable[Response]]
MAX_CONTROL_BODY = 4096


def json_response(payload: dict[str, Any], status: int = 200,
                  set_cookie: bytes | None = None) -> Response:
    response = Response(json.dumps(payload, separators=(",", ":")), status_code=status,
                        media_type="application/json")
    response.headers["cache-control"] = "no-store"
    if set_cookie is not None:
        response.raw_headers.append((b"set-cookie", set_cookie))
    return response


def error_response(error: GatewayError) -> Response:
    status, headers, body = render(error)
    response = Response(body, status_code=status)
    response.raw_headers[:] = headers
    return response


def guard(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except GatewayError as error:
            # The data plane's request log line names the refusal too.
            request.scope["gateway.error"] = (error.code, error.reason)
            return error_response(error)

    return wrapped


class EndpointBase:
    resolver: Resolver
    sessions: SessionManager
    otp: OtpService | None
    rewriter: HeaderRewriter | None

    def _client_ip(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        if self.rewriter is None:
            return peer or "unknown"
        return self.rewriter.client_ip(peer, list(request.scope["headers"]))

    def _now(self) -> float:
        return self.sessions.clock()

    async def _session(self, request: Request) -> Session | None:
        cookie = self.sessions.cookie_value(list(request.scope["headers"]))
        return await self.sessions.load(cookie) if cookie else None

    def _check_origin(self, request: Request) -> None:
        credentials = read_credentials(list(request.scope["headers"]))
        if not self.resolver.origin_allowed(credentials, request.url.scheme):
            raise OriginForbidden()

    async def _body(self, request: Request) -> dict[str, Any]:
        # Read with a running cap: a control endpoint never holds more than a few KiB.
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_CONTROL_BODY:
            raise PayloadTooLarge()
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_CONTROL_BODY:
                raise PayloadTooLarge()
            parts.append(chunk)
        raw = b"".join(parts)
        if not raw:
            return {}
        if not is_json_content_type(request.headers.get("content-type", "").encode("latin-1")):
            raise UnsupportedMediaType("This endpoint only accepts application/json bodies.")
        return load_object(raw)

    async def _bearer(self, request: Request) -> Identity | None:
        credentials = read_credentials(list(request.scope["headers"]))
        if credentials.authorization is None:
            return None
        result = await self.resolver.verify_bearer(credentials.authorization)
        if isinstance(result, GatewayError):
            raise result
        return result

    async def _login(self, token: Identity) -> Session:
        """A new authenticated session for a verified token (linked and audited)."""
        record = await self.sessions.new_record(
            base_level=AUTHENTICATED, user_id=token.user_id, anonymous_id=None,
            email=token.email, name=token.name,
        )
        session = await self.sessions.create(record)
        await self.sessions.link(token.user_id, anonymous_id=None, session=session)
        audit("login", user=user_hash(token.user_id))
        return session
