"""The ``/auth/session`` endpoints: log in with a bearer token, show the session, log out.

Apart from the OTP endpoints because they answer a different question (who is this session,
by the IdP's word) and share with them only the helpers in :mod:`gateway.endpoints_base`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints_base import EndpointBase, json_response
from gateway.errors import SessionMissing, SubjectMismatch, TokenMissing
from gateway.identity.model import OTP
from gateway.identity.session import Session
from gateway.observe import audit, user_hash


class SessionEndpoints(EndpointBase):
    async def session_create(self, request: Request) -> Response:
        token = await self._bearer(request)
        if token is None:
            raise TokenMissing("POST /auth/session needs 'Authorization: Bearer <jwt>'.")
        session = await self._session(request)
        if session is None:
            session = await self._login(token)
            return json_response(self._describe(session), set_cookie=self.sessions.cookie(session))
        bound = session.record.bound_user
        if bound is not None and bound != token.user_id:
            raise SubjectMismatch()
        if session.record.user_id is None:
            anonymous_id = session.record.anonymous_id
            session = await self.resolver.upgrade(session, token)
            payload = self._describe(session)
            if anonymous_id is not None:
                payload["anonymous_id"] = anonymous_id
            return json_response(payload, set_cookie=self.sessions.cookie(session))
        return json_response(self._describe(session))

    async def session_show(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            raise SessionMissing()
        return json_response(self._describe(session))

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
