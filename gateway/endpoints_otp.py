"""The ``/auth/otp`` endpoints: send a one-time code, and verify it to elevate the session.

Apart from the session endpoints because a code binds a session to a customer by a different
route (the anonymous visitor proves who they are) with its own rules: user binding, input
checked before any counter moves, the client address for rate limits, the code's language.
"""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints_base import EndpointBase, json_response
from gateway.errors import (
    BadRequest,
    NotFound,
    SessionMissing,
    SubjectConflict,
    SubjectMismatch,
)
from gateway.identity.model import OTP, is_valid_user_id
from gateway.otp.codes import is_well_formed
from gateway.otp.service import OtpService


class OtpEndpoints(EndpointBase):
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
        return json_response(payload, status=202, set_cookie=set_cookie)

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
        return json_response(payload, set_cookie=self.sessions.cookie(elevated))


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
