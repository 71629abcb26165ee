"""The claim checks a JWT faces once its signature holds, and the :class:`Identity` it becomes.

A valid signature only proves the issuer said it: audience, subject, scope, lifetime and the
time claims are still checked here against that issuer's configuration, and only header-safe
values travel on to the backend. Kept apart from the verifier so the checks and their order
(time last) read in one place, with no key handling or token parsing around them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from gateway.errors import TokenExpired
from gateway.identity.jwt_config import IssuerConfig
from gateway.identity.jwt_unverified import reject
from gateway.identity.model import AUTHENTICATED, Identity, is_valid_user_id


def identity_from_claims(
    config: IssuerConfig, claims: dict[str, Any], *, clock: Callable[[], float], leeway: float
) -> Identity:
    """The identity in ``claims`` (already signature-checked); raises TokenInvalid/TokenExpired."""
    aud = claims.get("aud")
    if config.audience is not None:
        if aud is None:
            reject("missing_claim")
        if aud != config.audience and not (isinstance(aud, list) and config.audience in aud):
            reject("bad_audience")
    subject = claims.get(config.subject_claim)
    if subject is None:
        reject("missing_claim")
    if not is_valid_user_id(subject):
        reject("bad_subject")
    if config.required_scope is not None and not _has_scope(claims, config.required_scope):
        reject("missing_scope")
    exp = _time_claim(claims, "exp")
    if exp is None:
        reject("missing_claim")
    iat = _time_claim(claims, "iat")
    nbf = _time_claim(claims, "nbf")
    if config.max_lifetime is not None:
        if iat is None:
            reject("missing_claim")
        if exp - iat > config.max_lifetime:
            reject("lifetime_too_long")
    # Time is checked last so that "expired" means a fresh token would be accepted.
    now = clock()
    if (nbf is not None and nbf > now + leeway) or (iat is not None and iat > now + leeway):
        reject("immature")
    if exp <= now - leeway:
        raise TokenExpired(reason="expired")
    email = claims.get("email")
    name = claims.get("name")
    return Identity(
        user_id=subject,
        level=AUTHENTICATED,
        expires_at=exp,
        # An unverified address is somebody's claim, not a fact the backend may act on.
        email=email if claims.get("email_verified") is True and _header_safe(email) else None,
        name=name if _header_safe(name) else None,
        issuer=config.issuer,
        claims=claims,
    )


def _time_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        reject("malformed")
    try:
        number = float(value)
    except OverflowError:
        reject("malformed")
    if not math.isfinite(number):
        reject("malformed")
    return number


def _has_scope(claims: dict[str, Any], required: str) -> bool:
    # OAuth's "scope" is a space-separated string (RFC 8693 §4.2); "scp" is a list (Okta) or
    # a space-separated string (Entra ID). Any other shape grants nothing.
    granted: set[str] = set()
    scope, scp = claims.get("scope"), claims.get("scp")
    for value in (scope, scp):
        if isinstance(value, str):
            granted.update(value.split(" "))
    if isinstance(scp, list):
        granted.update(item for item in scp if isinstance(item, str))
    return required in granted


def _header_safe(value: object) -> bool:
    # Email and name travel to the backend in headers: refuse control characters outright.
    return (
        isinstance(value, str)
        and 0 < len(value) <= 320
        and not any(ch < " " or ch == "\x7f" for ch in value)
    )
