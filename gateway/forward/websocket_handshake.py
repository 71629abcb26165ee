"""The WebSocket handshake: may this socket open at all, and on whose credentials (CONTRACT §7).

Everything decided before the upgrade lives here: the route's policy, the credentials (a bearer
token, in a header or carried in the subprotocol list, or a session cookie), the Origin check
that cookie handshakes need, and the :class:`SocketAuth` the bridge keeps so it can re-check each
later message the same way. It is apart from :mod:`gateway.forward.websocket` because it only
decides — it raises a :class:`~gateway.errors.GatewayError` and never speaks ASGI — while that
module does the talking: refusing or accepting the upgrade, then relaying and re-checking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gateway.errors import Forbidden, IdentityError, OriginForbidden, SubjectMismatch
from gateway.identity.model import Identity
from gateway.identity.resolver import Resolver, read_credentials
from gateway.policy.decide import decide
from gateway.policy.model import PolicySet, Rule
from gateway.policy.paths import canonical_path

BEARER = "bearer"


@dataclass(slots=True)
class SocketAuth:
    """How the handshake was authenticated, so each message can be re-checked the same way.

    ``identity`` is None only on a ``public`` route reached without credentials.
    """

    identity: Identity | None
    session_key: str | None
    session_id: str | None
    token_expires_at: float | None


class SocketHandshake:
    """The handshake half of :class:`~gateway.forward.websocket.WebSocketBridge`.

    The bridge sets these attributes in its ``__init__``; they are declared here so this half
    type-checks on its own.
    """

    _policies: Callable[[], PolicySet]
    resolver: Resolver
    allowed_origins: frozenset[str]

    async def _handshake(
        self, scope: dict[str, Any], headers: list[tuple[bytes, bytes]], record: dict[str, Any]
    ) -> tuple[Rule | None, SocketAuth, list[str], bytes | None]:
        path = canonical_path(scope.get("raw_path") or scope["path"].encode("latin-1"))
        record["path"] = scope["gateway.path"] = path
        if path == "/auth" or path.startswith("/auth/"):
            raise Forbidden("WebSocket handshakes to /auth are not allowed.")
        policies = self._policies()
        rule = policies.match("GET", path, True)
        record["rule"] = rule.name if rule is not None else None
        require = rule.require if rule is not None else policies.default
        if require == "deny":
            raise Forbidden()
        offered: list[str] = list(scope.get("subprotocols") or [])
        token = None
        if len(offered) >= 2 and offered[0].lower() == BEARER:
            # Browsers cannot set headers on a WebSocket, so the token rides in the subprotocol
            # list as the pair ``bearer, <jwt>``; both entries are removed before forwarding.
            token = offered[1]
            offered = offered[2:]
        credentials = read_credentials(headers)
        auth_header = credentials.authorization
        if token is not None:
            auth_header = b"Bearer " + token.encode("latin-1")
        sessions = self.resolver.sessions
        cookie = sessions.cookie_value(headers)
        session = await sessions.load(cookie) if cookie else None
        set_cookie = None
        identity: Identity | None = None
        token_expires: float | None = None
        if auth_header is not None:
            result = await self.resolver.verify_bearer(auth_header)
            if isinstance(result, IdentityError):
                if require != "public":
                    raise result
            else:
                identity, token_expires = result, result.expires_at
                bound = session.record.bound_user if session is not None else None
                if bound is not None and bound != result.user_id:
                    raise SubjectMismatch()
                if session is not None and bound is not None:
                    # The same user's session: it carries the elevation, if any.
                    identity = session.record.identity(sessions.clock(),
                                                       sessions.settings.absolute_timeout)
                    identity = _with_token_details(identity, result)
                else:
                    # An anonymous cookie next to a token: the socket rides on the token, and
                    # its messages are re-checked against the token's expiry.
                    session = None
        elif session is not None:
            self._check_origin(credentials.origin, credentials.host, scope)
            identity = session.record.identity(sessions.clock(),
                                               sessions.settings.absolute_timeout)
        elif require == "anonymous":
            self._check_origin(credentials.origin, credentials.host, scope)
            session = await sessions.create(await sessions.new_record())
            set_cookie = sessions.cookie(session)
            identity = session.record.identity(sessions.clock(),
                                               sessions.settings.absolute_timeout)
        if require != "public":
            decision = decide(require, identity.level if identity is not None else None)
            if not decision.allowed:
                assert decision.error is not None  # noqa: S101 - refusals carry their error
                raise decision.error()
        return rule, SocketAuth(
            identity=identity,
            session_key=session.key if session is not None else None,
            session_id=session.id if session is not None else None,
            token_expires_at=token_expires if session is None else None,
        ), offered, set_cookie

    def _check_origin(self, origin: bytes | None, host: bytes | None,
                      scope: dict[str, Any]) -> None:
        """Cookie handshakes need an Origin from the exact allow-list (or the gateway's own).

        A page on another site can open a WebSocket to us and the browser attaches our cookie;
        SameSite does not cover that, the Origin header does.
        """
        if origin is None:
            raise OriginForbidden("A cookie-authenticated WebSocket needs an Origin header.")
        text = origin.decode("latin-1")
        scheme = "https" if scope.get("scheme") == "wss" else "http"
        own = f"{scheme}://{host.decode('latin-1')}" if host else None
        if text != own and text not in self.allowed_origins:
            raise OriginForbidden()


def _with_token_details(identity: Identity, token: Identity) -> Identity:
    return replace(identity, email=token.email, name=token.name)
