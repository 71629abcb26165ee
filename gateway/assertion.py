"""``X-Gateway-Assertion``: the identity the gateway vouches for, as a short-lived ES256 JWT.

Identity headers are only as trustworthy as the network path between gateway and backend; a
signed assertion lets the backend check them itself, with the public keys the gateway
publishes at ``/auth/jwks.json`` (CONTRACT §6). Claims: ``iss``, ``aud``, ``sub``,
``auth_level``, ``email`` (verified only, as in ``X-User-Email``), ``name``, ``anonymous_id``,
``iat``, ``exp`` (at most 60 s later); the header carries ``kid``, the RFC 7638 thumbprint of
the signing key, so every replica sharing a key file names it the same way.

Signing with ES256 costs ~50 µs, more than the rest of a forward, so an assertion is signed
once per identity and reused for most of its life: the backend always receives one with at
least a third of its lifetime (and at least 5 s unless the ttl is shorter) left.

Rotation: put the new key in ``key_file`` and the old one in ``previous_key_files``; both are
published, new assertions use the new key; remove the old one after a backend's JWKS cache
(and every assertion signed with it) has expired.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import ConfigError, NotFound, render
from gateway.identity.model import Identity
from gateway.settings.ops import AssertionSettings, load_p256

MAX_CACHED: Final = 10_000
JWKS_PATH: Final = "/auth/jwks.json"


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK with ``kid`` = its RFC 7638 thumbprint, ``alg`` ES256, ``use`` sig."""
    fields: dict[str, Any] = ECAlgorithm.to_jwk(key, as_dict=True)
    required = {name: fields[name] for name in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(required, separators=(",", ":"), sort_keys=True)
                            .encode("ascii")).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return {**required, "kid": kid, "alg": "ES256", "use": "sig"}


class AssertionSigner:
    def __init__(self, settings: AssertionSettings, *, clock: Callable[[], float] = time.time):
        if settings.audience is None:
            raise ConfigError(["assertion: option 'assertion.audience' must be set"])
        if settings.key_pem is not None:
            loaded = load_p256(settings.key_pem, private=True)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ConfigError(["assertion: 'assertion.key_file' holds no EC P-256 key"])
            private = loaded
        else:
            # Without a key file each process makes its own key, in memory only: fine for one
            # process (the JWKS changes on restart, and backends refetch on an unknown kid),
            # wrong for replicas behind one load balancer, which must share a key file.
            private = ec.generate_private_key(ec.SECP256R1())
        self._private = private
        current = public_jwk(private.public_key())
        self.kid = current["kid"]
        keys = [current]
        for pem in settings.previous_pems:
            previous = load_p256(pem, private=False)
            if previous is None:
                raise ConfigError(["assertion: a previous key file holds no EC P-256 key"])
            public = (previous.public_key()
                      if isinstance(previous, ec.EllipticCurvePrivateKey) else previous)
            jwk = public_jwk(public)
            if all(jwk["kid"] != known["kid"] for known in keys):
                keys.append(jwk)
        self.kids = tuple(jwk["kid"] for jwk in keys)
        self.jwks_body = json.dumps({"keys": keys}, separators=(",", ":")).encode("ascii")
        self.header = settings.header.lower().encode("latin-1")
        self._claims: dict[str, Any] = {"iss": settings.issuer, "aud": settings.audience}
        self._ttl = settings.ttl
        # Reused until a third of the lifetime (at least 5 s, but never half of it) is left.
        self._keep = min(max(settings.ttl / 3, 5.0), settings.ttl / 2)
        self._clock = clock
        self._cache: dict[tuple[str, str, str | None, str | None, str | None],
                          tuple[bytes, float]] = {}

    def for_identity(self, identity: Identity) -> bytes:
        """The assertion for ``identity``: a cache hit (dict lookup) or a fresh signature."""
        key = (identity.user_id, identity.level, identity.email, identity.name,
               identity.anonymous_id)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and now < hit[1]:
            return hit[0]
        token, expires = self.sign(identity, now)
        cache = self._cache
        if hit is None and len(cache) >= MAX_CACHED:
            # Oldest first (dicts keep insertion order): O(1), and the bound holds because
            # identities come from clients.
            del cache[next(iter(cache))]
        cache[key] = (token, expires - self._keep)
        return token

    def sign(self, identity: Identity, now: float) -> tuple[bytes, int]:
        """A fresh assertion and its ``exp``."""
        issued = int(now)
        expires = issued + self._ttl
        claims = {**self._claims, "sub": identity.user_id, "auth_level": identity.level,
                  "iat": issued, "exp": expires}
        if identity.email is not None:
            claims["email"] = identity.email
        if identity.name is not None:
            claims["name"] = identity.name
        if identity.anonymous_id is not None:
            claims["anonymous_id"] = identity.anonymous_id
        token = jwt.encode(claims, self._private, algorithm="ES256", headers={"kid": self.kid})
        return token.encode("ascii"), expires


def jwks_handler(signer: AssertionSigner | None) -> Callable[[Request], Awaitable[Response]]:
    """``GET /auth/jwks.json``: public, no session needed; 404 when assertions are off."""
    body = signer.jwks_body if signer is not None else None

    async def jwks(request: Request) -> Response:
        if body is None:
            status, headers, error = render(
                NotFound("The identity assertion is not enabled on this gateway."))
            response = Response(error, status_code=status)
            response.raw_headers[:] = headers
            return response
        # Backends cache the set; PyJWKClient refetches on an unknown kid, which is what a
        # rotation produces, so five minutes of caching never breaks verification.
        return Response(body, media_type="application/json",
                        headers={"cache-control": "public, max-age=300"})

    return jwks
