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

This module holds the pipeline itself, the signature check and the verified-token cache (the
hot path). The stages before and after it live apart: parsing the unverified token in
:mod:`~gateway.identity.jwt_unverified`, choosing the issuer and key in
:mod:`~gateway.identity.jwt_keyring`, and the claim checks in :mod:`~gateway.identity.jwt_claims`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

import httpx
import jwt
from cachetools import LRUCache
from jwt.types import Options

from gateway.errors import IdentityError, TokenExpired
from gateway.identity.jwks import JwksFetcher
from gateway.identity.jwt_claims import identity_from_claims
from gateway.identity.jwt_config import JWTSettings
from gateway.identity.jwt_keyring import IssuerKeyRing
from gateway.identity.jwt_unverified import parse_unverified, reject
from gateway.identity.model import Identity

logger = logging.getLogger("gateway.jwt")

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


class JWTVerifier:
    """Verifies bearer JWTs against the configured issuers; see the module docstring."""

    def __init__(
        self,
        settings: JWTSettings,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Raises ConfigError listing every settings and key problem at once.
        self._keys = IssuerKeyRing(settings, http_client=http_client, clock=clock)
        self._settings = settings
        self._clock = clock
        self._leeway = settings.leeway
        self._cache: LRUCache[str, Identity] = LRUCache(maxsize=settings.cache_size)

    async def start(self) -> None:
        """Fetch every JWKS once; a failing IdP is logged and retried on demand, not fatal."""
        await self._keys.start()

    async def aclose(self) -> None:
        await self._keys.aclose()

    def jwks_fetcher(self, issuer: str) -> JwksFetcher | None:
        """The JWKS fetcher of ``issuer`` (for readiness checks and tests)."""
        return self._keys.jwks_fetcher(issuer)

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
            header, payload = parse_unverified(token, self._settings.max_token_bytes)
            issuer = self._keys.select_issuer(payload)
            issuer_name = issuer.config.issuer
            key = await self._keys.find_key(issuer, header.get("kid"))
            if header["alg"] != key.alg:
                reject("alg_mismatch")
            try:
                claims = jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.alg],
                    options=_DECODE_OPTIONS,
                    issuer=issuer_name,
                )
            except jwt.PyJWTError as error:
                reject(next((r for t, r in _PYJWT_REASONS if isinstance(error, t)), "malformed"))
            except (ValueError, TypeError, OverflowError):
                # A crafted token must be a 401, never a 500, whatever the library trips on.
                reject("malformed")
            identity = identity_from_claims(
                issuer.config, claims, clock=self._clock, leeway=self._leeway
            )
        except IdentityError as error:
            # Only the reason and a configured issuer name are logged: never token or claims.
            logger.debug("JWT rejected (issuer %s): %s", issuer_name or "-", error.reason)
            raise
        self._cache[token] = identity
        return identity
