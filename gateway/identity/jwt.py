"""JWT verification: a token becomes an :class:`Identity`, or a ``TokenInvalid``/``TokenExpired``.

The checks run cheapest and least trusting first, and nothing from the token decides how it is
checked except by lookup in our own configuration::

    size, three unpadded base64url segments     -> malformed
    header: JSON object, string alg             -> malformed
    header: no crit; alg not "none", supported  -> crit_unsupported / alg_mismatch
    iss (unverified) exactly a configured issuer -> unknown_issuer
    kid: static keys, then the issuer's JWKS    -> unknown_kid (JWKS refetch rate-limited)
    token alg == the key's one algorithm        -> alg_mismatch
    jwt.decode(algorithms=[key.alg])            -> bad_signature / missing_claim
    aud, subject, scope, max_lifetime           -> bad_audience / bad_subject / ...
    nbf, iat, then exp (with leeway)            -> immature / expired

``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are never read. Successes are cached by token
string; a hit re-checks ``exp`` against the injectable clock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import httpx
import jwt
from cachetools import LRUCache
from jwt.types import Options

from gateway.errors import ConfigError, IdentityError, TokenExpired, TokenInvalid
from gateway.identity.jwks import (
    JwksFetcher,
    KeySet,
    PreparedKey,
    prepare_config_key,
)
from gateway.identity.jwt_config import (
    SUPPORTED_ALGORITHMS,
    IssuerConfig,
    JWTSettings,
    check_jwt_settings,
)
from gateway.identity.model import AUTHENTICATED, Identity, is_valid_user_id

logger = logging.getLogger("gateway.jwt")

# Three unpadded base64url segments, none empty. RFC 7515 forbids padding, yet PyJWT accepts
# it: that would give one signed token several spellings, and let it dodge anything keyed by
# the token string (our cache, an operator's denylist).
_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

_DECODE_OPTIONS: Final[Options] = {
    "require": ["exp", "iss"],
    # Time claims are checked below against the injectable clock rather than PyJWT's own.
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    # PyJWT refuses a token with ``aud`` when no audience is configured; we accept it.
    "verify_aud": False,
    # Only the configured subject claim matters, and it gets the stricter user-id check.
    "verify_sub": False,
    # Short keys are refused at construction; this turns any residue into an error, not a
    # warning that would flood logs on the hot path.
    "enforce_minimum_key_length": True,
}

# The order matters: PyJWT's signature error is a subclass of its decode error.
_PYJWT_REASONS: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAlgorithmError, "alg_mismatch"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidIssuerError, "unknown_issuer"),
    (jwt.InvalidKeyError, "bad_signature"),
)


@dataclass(frozen=True, slots=True)
class _Issuer:
    config: IssuerConfig
    static: KeySet
    jwks: JwksFetcher | None


class JWTVerifier:
    """Verifies bearer JWTs against the configured issuers; see the module docstring."""

    def __init__(
        self,
        settings: JWTSettings,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        errors = check_jwt_settings(settings)
        prepared: list[KeySet] = []
        for index, config in enumerate(settings.issuers):
            keys: list[PreparedKey] = []
            for key in config.keys:
                try:
                    keys.append(prepare_config_key(key))
                except ValueError as error:
                    where = f"jwt.issuers[{index}] ({config.issuer!r}): key {key.kid!r}"
                    errors.append(f"{where}: {error}")
            prepared.append(KeySet.of(keys))
        if errors:
            raise ConfigError(errors)

        self._settings = settings
        self._clock = clock
        self._leeway = settings.leeway
        self._own_client: httpx.AsyncClient | None = None
        if http_client is None and any(config.jwks for config in settings.issuers):
            http_client = self._own_client = httpx.AsyncClient(timeout=settings.jwks_timeout)
        self._issuers: dict[str, _Issuer] = {}
        for config, static in zip(settings.issuers, prepared, strict=True):
            fetcher = None
            if config.jwks is not None and http_client is not None:
                fetcher = JwksFetcher(
                    config.jwks,
                    http_client,
                    timeout=settings.jwks_timeout,
                    min_refetch_interval=settings.jwks_min_refetch_interval,
                    cache_ttl=settings.jwks_cache_ttl,
                    clock=clock,
                )
            self._issuers[config.issuer] = _Issuer(config, static, fetcher)
        self._cache: LRUCache[str, Identity] = LRUCache(maxsize=settings.cache_size)

    async def start(self) -> None:
        """Fetch every JWKS once; a failing IdP is logged and retried on demand, not fatal."""
        fetchers = [issuer.jwks for issuer in self._issuers.values() if issuer.jwks]
        await asyncio.gather(*(fetcher.refresh() for fetcher in fetchers))

    async def aclose(self) -> None:
        for issuer in self._issuers.values():
            if issuer.jwks is not None:
                await issuer.jwks.aclose()
        if self._own_client is not None:
            await self._own_client.aclose()

    def jwks_fetcher(self, issuer: str) -> JwksFetcher | None:
        """The JWKS fetcher of ``issuer`` (for readiness checks and tests)."""
        entry = self._issuers.get(issuer)
        return entry.jwks if entry else None

    def verify_cached(self, token: str) -> Identity | None:
        """The cached identity for ``token``, ``None`` on a miss; raises if it has expired."""
        identity = self._cache.get(token)
        if identity is None:
            return None
        if identity.expires_at <= self._clock() - self._leeway:
            self._cache.pop(token, None)
            raise TokenExpired(reason="expired")
        return identity

    async def verify(self, token: str) -> Identity:
        """Verify ``token`` fully (or answer from the cache); raises TokenInvalid/TokenExpired."""
        cached = self.verify_cached(token)
        if cached is not None:
            return cached
        issuer_name = None
        try:
            header, payload = _parse_unverified(token, self._settings.max_token_bytes)
            issuer = self._select_issuer(payload)
            issuer_name = issuer.config.issuer
            key = await self._find_key(issuer, header.get("kid"))
            if header["alg"] != key.alg:
                _reject("alg_mismatch")
            try:
                claims = jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.alg],
                    options=_DECODE_OPTIONS,
                    issuer=issuer_name,
                )
            except jwt.PyJWTError as error:
                _reject(next((r for t, r in _PYJWT_REASONS if isinstance(error, t)), "malformed"))
            except (ValueError, TypeError, OverflowError):
                # A crafted token must be a 401, never a 500, whatever the library trips on.
                _reject("malformed")
            identity = self._identity(issuer.config, claims)
        except IdentityError as error:
            # Only the reason and a configured issuer name are logged: never token or claims.
            logger.debug("JWT rejected (issuer %s): %s", issuer_name or "-", error.reason)
            raise
        self._cache[token] = identity
        return identity

    def _select_issuer(self, payload: dict[str, Any]) -> _Issuer:
        iss = payload.get("iss")
        if iss is None:
            _reject("missing_claim")
        # An exact dict lookup: no prefix, suffix, case or trailing-slash tolerance.
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            _reject("unknown_issuer")
        return issuer

    async def _find_key(self, issuer: _Issuer, kid: str | None) -> PreparedKey:
        # The kid is only ever a dict key: it is never a path, a query or a URL.
        key: PreparedKey | None = None
        if kid is not None:
            key = issuer.static.find(kid)
            if key is None and issuer.jwks is not None:
                key = await issuer.jwks.find(kid)
        elif issuer.jwks is None:
            key = issuer.static.find(None)
        elif not issuer.static.keys:
            key = await issuer.jwks.find(None)
        if key is None:
            _reject("unknown_kid")
        return key

    def _identity(self, config: IssuerConfig, claims: dict[str, Any]) -> Identity:
        aud = claims.get("aud")
        if config.audience is not None:
            if aud is None:
                _reject("missing_claim")
            if aud != config.audience and not (isinstance(aud, list) and config.audience in aud):
                _reject("bad_audience")
        subject = claims.get(config.subject_claim)
        if subject is None:
            _reject("missing_claim")
        if not is_valid_user_id(subject):
            _reject("bad_subject")
        if config.required_scope is not None and not _has_scope(claims, config.required_scope):
            _reject("missing_scope")
        exp = _time_claim(claims, "exp")
        if exp is None:
            _reject("missing_claim")
        iat = _time_claim(claims, "iat")
        nbf = _time_claim(claims, "nbf")
        if config.max_lifetime is not None:
            if iat is None:
                _reject("missing_claim")
            if exp - iat > config.max_lifetime:
                _reject("lifetime_too_long")
        # Time is checked last so that "expired" means a fresh token would be accepted.
        now = self._clock()
        if (nbf is not None and nbf > now + self._leeway) or (
            iat is not None and iat > now + self._leeway
        ):
            _reject("immature")
        if exp <= now - self._leeway:
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


def _reject(reason: str) -> NoReturn:
    raise TokenInvalid(reason=reason)


def _parse_unverified(token: str, max_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    # The length check comes first so the pattern never scans an oversized input.
    if len(token) > max_bytes or _SHAPE.fullmatch(token) is None:
        _reject("malformed")
    header_segment, payload_segment, _ = token.split(".")
    header = _json_segment(header_segment)
    alg = header.get("alg")
    if not isinstance(alg, str):
        _reject("malformed")
    # We implement no critical extension, so RFC 7515 §4.1.11 says refuse any "crit".
    if "crit" in header:
        _reject("crit_unsupported")
    if alg.lower() == "none" or alg not in SUPPORTED_ALGORITHMS:
        _reject("alg_mismatch")
    if "kid" in header and not isinstance(header["kid"], str):
        _reject("malformed")
    return header, _json_segment(payload_segment)


class _DuplicateMemberError(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may pick different copies of a repeated member ("sub" twice); refuse both.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateMemberError
    return result


def _no_constants(name: str) -> NoReturn:
    # NaN compares false with everything, so an "exp": NaN would never expire.
    raise ValueError(name)


# One decoder, built once: ``json.loads`` with hooks would build (and compile) one per call.
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constants)


def _json_segment(segment: str) -> dict[str, Any]:
    if len(segment) % 4 == 1:
        _reject("malformed")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        # RFC 7519 §7.2: the JSON is UTF-8; other encodings are not guessed at.
        value = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        _reject("malformed")
    if not isinstance(value, dict):
        _reject("malformed")
    return value


def _time_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        _reject("malformed")
    try:
        number = float(value)
    except OverflowError:
        _reject("malformed")
    if not math.isfinite(number):
        _reject("malformed")
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
