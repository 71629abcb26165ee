"""The gateway's own endpoints under ``/auth`` (CONTRACT §3), never forwarded.

Starlette serves these: they are the control plane (a few requests per user per session), so
its routing and request helpers are worth their cost here, unlike on the proxy's hot path.
Every refusal is an exception from :mod:`gateway.errors`, rendered by one wrapper.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import (
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    OriginForbidden,
    PayloadTooLarge,
    SessionMissing,
    SubjectConflict,
    SubjectMismatch,
    TokenMissing,
    UnsupportedMediaType,
    render,
)
from gateway.identity.model import AUTHENTICATED, OTP, Identity, is_valid_user_id
from gateway.identity.resolver import Resolver, read_credentials
from gateway.identity.session import Session, SessionManager
from gateway.observe import audit, user_hash
from gateway.otp.codes import is_well_formed
from gateway.otp.service import OtpService
from gateway.rewrite.body import is_json_content_type, load_object
from gateway.rewrite.headers import HeaderRewriter

log = logging.getLogger("gateway.endpoints")
Handler = Callable[[Request], Awaitable[Response]]
MAX_CONTROL_BODY = 4096
STATIC = Path(__file__).parent / "static"


def _json(payload: dict[str, Any], status: int = 200,
          set_cookie: bytes | None = None) -> Response:
    response = Response(json.dumps(payload, separators=(",", ":")), status_code=status,
                        media_type="application/json")
    response.headers["cache-control"] = "no-store"
    if set_cookie is not None:
        response.raw_headers.append((b"set-cookie", set_cookie))
    return response


def _error(error: GatewayError) -> Response:
    status, headers, body = render(error)
    response = Response(body, status_code=status)
    response.raw_headers[:] = headers
    return response


def _guard(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except GatewayError as error:
            # The data plane's request log line names the refusal too.
            request.scope["gateway.error"] = (error.code, error.reason)
            return _error(error)

    return wrapped


class AuthEndpoints:
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
            response = await _guard(handler)(request)
        elif scope["gateway.path"] in self.paths:
            allowed = sorted(m for p, m in self.routes if p == scope["gateway.path"])
            response = _error(MethodNotAllowed(headers={"Allow": ", ".join(allowed)}))
        else:
            response = _error(NotFound())
        await response(scope, receive, send)

    # Helpers -------------------------------------------------------------------------------

    def _client_ip(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        if self.rewriter is None:
            return peer or "unknown"
        return self.rewriter.client_ip(peer, list(request.scope["headers"]))

    def _now(self) -> float:
        return self.sessions.clock()

    def _describe(self, session: Session) -> dict[str, Any]:
        identity = session.record.identity(self._now(), self.sessions.settings.absolute_timeout)
        payload: dict[str, Any] = {
            "user_id": identity.user_id,
            "level": identity.level,
            "expires_at": int(identity.expires_at),
        }
        if identity.level == OTP and session.record.otp_expires_at is not None:
            payload["otp_expires_at"] = int(session.record.otp_expires_at)
        return payload

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

    # /auth/session -------------------------------------------------------------------------

    async def session_create(self, request: Request) -> Response:
        token = await self._bearer(request)
        if token is None:
            raise TokenMissing("POST /auth/session needs 'Authorization: Bearer <jwt>'.")
        session = await self._session(request)
        if session is None:
            session = await self._login(token)
            return _json(self._describe(session), set_cookie=self.sessions.cookie(session))
        bound = session.record.bound_user
        if bound is not None and bound != token.user_id:
            raise SubjectMismatch()
        if session.record.user_id is None:
            anonymous_id = session.record.anonymous_id
            session = await self.resolver.upgrade(session, token)
            payload = self._describe(session)
            if anonymous_id is not None:
                payload["anonymous_id"] = anonymous_id
            return _json(payload, set_cookie=self.sessions.cookie(session))
        return _json(self._describe(session))

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

    async def session_show(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            raise SessionMissing()
        return _json(self._describe(session))

    async def session_delete(self, request: Request) -> Response:
        session = await self._session(request)
        if session is not None:
            self._check_origin(request)
            await self.sessions.destroy(session)
            identity = session.record.identity(self._now(),
                                               self.sessions.settings.absolute_timeout)
            audit("logout", user=user_hash(identity.user_id), auth_level=identity.level)
        response = Response(status_code=204)
        response.raw_headers.append((b"set-cookie", self.sessions.clear_cookie()))
        return response

    # /auth/otp -----------------------------------------------------------------------------

    def _service(self) -> OtpService:
        if self.otp is None:
            raise NotFound("One-time codes are not configured on this gateway.")
        return self.otp

    async def otp_send(self, request: Request) -> Response:
        service = self._service()
        body = await self._body(request)
        requested = body.get("user_id")
        if requested is not None and not is_valid_user_id(requested):
            raise BadRequest("'user_id' must be 1-255 visible ASCII characters.",
                             reason="bad_user_id")
        session = await self._session(request)
        set_cookie = None
        if session is not None:
            self._check_origin(request)
        token = await self._bearer(request)
        if session is None:
            if token is not None:
                session = await self._login(token)
            else:
                session = await self.sessions.create(await self.sessions.new_record())
            set_cookie = self.sessions.cookie(session)
        elif token is not None and session.record.bound_user not in (None, token.user_id):
            raise SubjectMismatch()
        bound = session.record.bound_user or (token.user_id if token else None)
        if bound is not None:
            # A session bound to a user (by login or by an earlier code) may only ask for a
            # code for that user: switching customers needs a logout first.
            if requested is not None and requested != bound:
                raise SubjectConflict()
            target = bound
        elif isinstance(requested, str):
            target = requested
        else:
            raise BadRequest("'user_id' is required for a session without a login.",
                             reason="missing_user_id")
        result = await service.send(
            owner=session.key, user_id=target, client_ip=self._client_ip(request),
            language=_language(request.headers.get("accept-language", "")),
        )
        payload = {"channel": result.channel, "destination": result.destination,
                   "expires_in": result.expires_in, "resend_in": result.resend_in}
        return _json(payload, status=202, set_cookie=set_cookie)

    async def otp_verify(self, request: Request) -> Response:
        service = self._service()
        body = await self._body(request)
        if not is_well_formed(body.get("code")):
            # Input is checked before anything is looked up, so junk never moves a counter.
            raise BadRequest("'code' must be exactly 6 digits, as a string.",
                             reason="otp_code_format")
        session = await self._session(request)
        if session is None:
            raise SessionMissing("Request a code first; it is bound to your session.")
        self._check_origin(request)
        user_id = await service.verify(owner=session.key, code=body["code"],
                                       client_ip=self._client_ip(request))
        record = session.record
        expires = self._now() + service.settings.elevation_ttl
        if record.user_id is not None:
            record = replace(record, otp_expires_at=expires)
        else:
            # OTP identity: the anonymous visitor proved they are this customer.
            record = replace(record, otp_user_id=user_id, otp_expires_at=expires)
        elevated = await self.sessions.rotate(session, record)
        await self.sessions.link(user_id, anonymous_id=record.anonymous_id, session=elevated)
        payload = {"user_id": user_id, "level": OTP, "otp_expires_at": int(expires)}
        return _json(payload, set_cookie=self.sessions.cookie(elevated))

    async def client_js(self, request: Request) -> Response:
        # /auth/client.js or /auth/client.mjs (CONTRACT §8); never cached stale.
        path = STATIC / request.scope["gateway.path"].rsplit("/", 1)[1]
        if not path.exists():
            raise NotFound()
        return Response(path.read_bytes(), media_type="text/javascript",
                        headers={"cache-control": "no-cache"})




def _language(header: str) -> str | None:
    """The first supported language of an Accept-Language header (q-values honoured)."""
    choices: list[tuple[float, str]] = []
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in ("de", "en", "es", "fr") and quality > 0:
            choices.append((quality, primary))
    choices.sort(key=lambda item: -item[0])
    return choices[0][1] if choices else None
