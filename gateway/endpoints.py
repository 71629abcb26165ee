"""The gateway's own endpoints under ``/auth`` (CONTRACT §3), never forwarded.

Starlette serves these: they are the control plane (a few requests per user per session), so
its routing and request helpers are worth their cost here, unlike on the proxy's hot path.
Every refusal is an exception from :mod:`gateway.errors`, rendered by one wrapper.

This module holds the route table, the dispatch and the static client script. The endpoints
themselves live in :mod:`gateway.endpoints_session` and :mod:`gateway.endpoints_otp`, and what
they share (responses, the error wrapper, request helpers) in :mod:`gateway.endpoints_base`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints_base import MAX_CONTROL_BODY, Handler, error_response, guard
from gateway.endpoints_otp import OtpEndpoints
from gateway.endpoints_session import SessionEndpoints
from gateway.errors import MethodNotAllowed, NotFound
from gateway.identity.resolver import Resolver
from gateway.identity.session import SessionManager
from gateway.otp.service import OtpService
from gateway.rewrite.headers import HeaderRewriter

__all__ = ["MAX_CONTROL_BODY", "STATIC", "AuthEndpoints", "Handler"]

log = logging.getLogger("gateway.endpoints")
STATIC = Path(__file__).parent / "static"


class AuthEndpoints(SessionEndpoints, OtpEndpoints):
    def __init__(self, resolver: Resolver, otp: OtpService | None,
                 extra: Mapping[tuple[str, str], Handler] | None = None) -> None:
        self.resolver = resolver
        self.sessions: SessionManager = resolver.sessions
        self.otp = otp
        self.routes: dict[tuple[str, str], Handler] = {
            ("/auth/session", "POST"): self.session_create,
            ("/auth/session", "GET"): self.session_show,
            ("/auth/session", "DELETE"): self.session_delete,
            ("/auth/otp/send", "POST"): self.otp_send,
            ("/auth/otp/verify", "POST"): self.otp_verify,
            ("/auth/client.js", "GET"): self.client_js,
            ("/auth/client.js", "HEAD"): self.client_js,
            # The same client as an ES module (a two-line wrapper importing client.js).
            ("/auth/client.mjs", "GET"): self.client_js,
            ("/auth/client.mjs", "HEAD"): self.client_js,
            **(extra or {}),  # Routes other modules own, e.g. /auth/jwks.json (assertion.py).
        }
        self.paths = {path for path, _ in self.routes}
        # Set by the app once the rewriter exists: rate limits key on the real client address.
        self.rewriter: HeaderRewriter | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Dispatch on the canonical path the data plane already checked."""
        request = Request(scope, receive)
        handler = self.routes.get((scope["gateway.path"], scope["method"]))
        if handler is not None:
            response = await guard(handler)(request)
        elif scope["gateway.path"] in self.paths:
            allowed = sorted(m for p, m in self.routes if p == scope["gateway.path"])
            response = error_response(MethodNotAllowed(headers={"Allow": ", ".join(allowed)}))
        else:
            response = error_response(NotFound())
        await response(scope, receive, send)

    async def client_js(self, request: Request) -> Response:
        # /auth/client.js or /auth/client.mjs (CONTRACT §8); never cached stale.
        path = STATIC / request.scope["gateway.path"].rsplit("/", 1)[1]
        if not path.exists():
            raise NotFound()
        return Response(path.read_bytes(), media_type="text/javascript",
                        headers={"cache-control": "no-cache"})
