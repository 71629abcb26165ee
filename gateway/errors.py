"""The gateway's one exception tree, and how each error becomes a response.

Every refusal the gateway makes is an exception from this tree; the data plane catches
``GatewayError`` in one place and renders it with :func:`render`. Anything else that escapes is a
bug (CONTRACT §5: a 5xx other than 502/503/504 is a bug).

::

    GatewayError                      status  error
    ├── BadRequest                    400     bad_request
    │   └── UnsupportedMediaType      415     unsupported_media_type
    ├── PayloadTooLarge               413     payload_too_large
    ├── NotFound                      404     not_found
    ├── MethodNotAllowed              405     method_not_allowed
    ├── IdentityError                 401
    │   ├── TokenMissing                      token_missing
    │   ├── TokenInvalid                      token_invalid
    │   ├── TokenExpired                      token_expired
    │   ├── SubjectMismatch                   subject_mismatch (409 on /auth/otp/send)
    │   └── SessionMissing                    session_missing
    ├── PolicyError
    │   ├── Forbidden                 403     forbidden
    │   ├── OriginForbidden           403     origin_forbidden
    │   └── OtpRequired               401     otp_required
    ├── RateLimited                   429     rate_limited
    ├── UpstreamError
    │   ├── UpstreamUnavailable       502     upstream_unavailable
    │   └── UpstreamTimeout           504     upstream_timeout
    ├── StoreUnavailable              503     store_unavailable
    ├── OtpError
    │   ├── OtpLocked                 429     otp_locked
    │   └── UnknownUser               404     unknown_user (opt-in only)
    ├── DeliveryError                 (internal: directory or sender failed; never shown as is)
    │   ├── DirectoryError
    │   └── SendError
    └── ConfigError                   (not an HTTP error: start-up and policy validation)
        └── PolicyLoadError

Messages are fixed, client-safe sentences: they never echo a token, a cookie, a code or a
secret, so an exception can be rendered without scrubbing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

REALM = 'Bearer realm="gateway"'


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "The gateway could not handle the request."
    www_authenticate: ClassVar[str | None] = None

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        # A short machine-readable reason for logs and metrics (e.g. "bad_signature"); it is
        # never a value taken from the request.
        self.reason = reason or self.code
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        if self.www_authenticate is not None:
            headers.append((b"www-authenticate", self.www_authenticate.encode("latin-1")))
        for name, value in self.headers.items():
            headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        return headers

    def body(self) -> bytes:
        payload: dict[str, Any] = {"error": self.code, "message": self.message}
        payload.update(self.extra)
        return json.dumps(payload, separators=(",", ":")).encode()


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"
    default_message = "The request is malformed."


class UnsupportedMediaType(BadRequest):
    status = 415
    code = "unsupported_media_type"
    default_message = "This route only accepts application/json bodies."


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"
    default_message = "The request body is larger than the gateway accepts."


class NotFound(GatewayError):
    status = 404
    code = "not_found"
    default_message = "No such gateway endpoint."


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"
    default_message = "This gateway endpoint does not accept this method."


class IdentityError(GatewayError):
    status = 401
    # RFC 6750: every 401 names the scheme the client should use.
    www_authenticate: ClassVar[str | None] = REALM


class TokenMissing(IdentityError):
    code = "token_missing"
    default_message = "This route needs credentials."
    www_authenticate = REALM


class TokenInvalid(IdentityError):
    code = "token_invalid"
    default_message = "The token is not valid."
    www_authenticate = REALM + ', error="invalid_token"'


class TokenExpired(IdentityError):
    code = "token_expired"
    default_message = "The token has expired; fetch a fresh one and retry."
    www_authenticate = REALM + ', error="invalid_token", error_description="token expired"'


class SubjectMismatch(IdentityError):
    code = "subject_mismatch"
    default_message = "The token's user differs from the session's user; log out first."


class SubjectConflict(SubjectMismatch):
    """An authenticated session asked for a code for somebody else (CONTRACT §3: 409)."""

    status = 409
    default_message = "A code can only be requested for your own user id."
    www_authenticate = None


class SessionMissing(IdentityError):
    code = "session_missing"
    default_message = "There is no session; sign in first."


class PolicyError(GatewayError):
    status = 403


class Forbidden(PolicyError):
    code = "forbidden"
    default_message = "This route is not allowed."


class OriginForbidden(PolicyError):
    code = "origin_forbidden"
    default_message = "Requests from this origin are not allowed."


class OtpRequired(PolicyError):
    status = 401
    code = "otp_required"
    default_message = "This route needs a verified one-time code."
    # RFC 9470: the client must step up to a stronger authentication.
    www_authenticate = (
        REALM + ', error="insufficient_user_authentication", '
        'error_description="a verified one-time code is required", acr_values="otp"'
    )

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # Where the client steps up (CONTRACT §5: otp_required comes with both URLs).
        self.extra.setdefault("send", "/auth/otp/send")
        self.extra.setdefault("verify", "/auth/otp/verify")


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests; retry later."


class UpstreamError(GatewayError):
    status = 502


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    default_message = "The chatbot backend is unreachable."


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    default_message = "The chatbot backend did not answer in time."


class StoreUnavailable(GatewayError):
    status = 503
    code = "store_unavailable"
    default_message = "The session store is unreachable; retry later."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", "5")


class OtpError(GatewayError):
    status = 400


class OtpLocked(OtpError):
    status = 429
    code = "otp_locked"
    default_message = "Too many wrong codes; request a new code later."


class UnknownUser(OtpError):
    status = 404
    code = "unknown_user"
    default_message = "No contact is known for this user."


class DeliveryError(GatewayError):
    """The directory or a sender failed. Logged with a reason; the client sees a uniform answer."""

    status = 503
    code = "delivery_failed"
    default_message = "The code could not be sent; retry later."


class DirectoryError(DeliveryError):
    pass


class SendError(DeliveryError):
    pass


class ConfigError(GatewayError):
    """Invalid configuration: carries every problem found, not just the first."""

    code = "config_error"

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors) or "invalid configuration")


class PolicyLoadError(ConfigError):
    """The policy set is invalid; ``errors`` holds one CONTRACT §4 line per problem."""

    code = "policy_error"


def render(error: GatewayError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, raw ASGI headers and body for ``error``."""
    body = error.body()
    headers = error.response_headers()
    headers.append((b"content-length", str(len(body)).encode()))
    return error.status, headers, body
