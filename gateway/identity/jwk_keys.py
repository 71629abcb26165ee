"""Verification keys, prepared once: from configuration or from an issuer's JWKS document.

A :class:`PreparedKey` is bound to exactly one algorithm and holds what ``jwt.decode`` takes
without further parsing: the HMAC secret, or a ``cryptography`` public key object. Keys come
from configuration (:func:`prepare_config_key`) or from a JWKS document (:func:`parse_jwks`,
fetched by :mod:`gateway.identity.jwks`); never from a token's own headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK, PyJWTError
from jwt.algorithms import get_default_algorithms

from gateway.identity.jwt_config import (
    ALGORITHMS_BY_KTY,
    HMAC_MIN_SECRET_BYTES,
    SUPPORTED_ALGORITHMS,
    KeyConfig,
)

_ALGORITHMS: Final = get_default_algorithms()
_PUBLIC_KEY_TYPES: Final = (RSAPublicKey, EllipticCurvePublicKey, Ed25519PublicKey, Ed448PublicKey)
# The curves each JWK key type may name for the one algorithm we accept for it.
_CURVES: Final[dict[str, frozenset[str]]] = {
    "EC": frozenset({"P-256"}),
    "OKP": frozenset({"Ed25519", "Ed448"}),
}
# JWK members that only private or symmetric keys carry: a public JWKS holding them is a leak
# or a mistake, and such a key is skipped rather than trusted.
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_JWKS_KEYS: Final = 100


@dataclass(frozen=True, slots=True)
class PreparedKey:
    kid: str | None
    alg: str
    key: Any = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeySet:
    by_kid: Mapping[str, PreparedKey]
    keys: tuple[PreparedKey, ...]

    @classmethod
    def of(cls, keys: list[PreparedKey]) -> KeySet:
        by_kid: dict[str, PreparedKey] = {}
        for key in keys:
            # The first key wins a duplicated kid, so a later entry can never shadow it.
            if key.kid is not None:
                by_kid.setdefault(key.kid, key)
        return cls(by_kid, tuple(keys))

    def find(self, kid: str | None) -> PreparedKey | None:
        """The key named ``kid``; without a kid, the set's only key (if it has just one)."""
        if kid is None:
            return self.keys[0] if len(self.keys) == 1 else None
        return self.by_kid.get(kid)


EMPTY_KEY_SET: Final = KeySet({}, ())


def prepare_config_key(config: KeyConfig) -> PreparedKey:
    """Load a configured key; ``ValueError`` says what is wrong without quoting the key."""
    if config.alg not in SUPPORTED_ALGORITHMS:
        raise ValueError(
            f"option 'alg' must be one of {', '.join(SUPPORTED_ALGORITHMS)}, "
            f"but it's configured as {config.alg!r}"
        )
    if config.alg in HMAC_MIN_SECRET_BYTES:
        if config.secret is None or config.public_key_pem is not None:
            raise ValueError(f"an {config.alg} key needs a secret and no public key")
        minimum = HMAC_MIN_SECRET_BYTES[config.alg]
        if len(config.secret) < minimum:
            raise ValueError(
                f"an {config.alg} secret must be at least {minimum} bytes, "
                f"but it's {len(config.secret)} bytes"
            )
        try:
            # PyJWT refuses secrets that look like PEM, DER or JWK text: that is the shape of
            # an algorithm-confusion mistake, so it is a configuration error here too.
            secret = _ALGORITHMS[config.alg].prepare_key(config.secret)
        except PyJWTError:
            raise ValueError("the secret looks like a public key or a JWK, not a secret") from None
        return PreparedKey(config.kid, config.alg, secret)
    if config.public_key_pem is None or config.secret is not None:
        raise ValueError(f"an {config.alg} key needs a public key (PEM) and no secret")
    try:
        public_key = load_pem_public_key(config.public_key_pem)
    except (ValueError, TypeError):
        raise ValueError("the public key is not a PEM-encoded public key") from None
    return _prepare_public_key(config.kid, config.alg, public_key)


def _prepare_public_key(kid: str | None, alg: str, key_object: object) -> PreparedKey:
    algorithm = _ALGORITHMS[alg]
    if not isinstance(key_object, _PUBLIC_KEY_TYPES):
        raise ValueError(f"the key is not a public key usable with {alg}")
    try:
        # prepare_key checks the key family and, for ES256, the curve.
        prepared = algorithm.prepare_key(key_object)
    except (PyJWTError, TypeError, ValueError):
        raise ValueError(f"the key does not fit algorithm {alg}") from None
    too_short = algorithm.check_key_length(prepared)
    if too_short:
        raise ValueError(too_short)
    return PreparedKey(kid, alg, prepared)


def key_from_jwk(jwk: object, algorithms: tuple[str, ...]) -> PreparedKey | None:
    """A verification key from one JWKS entry, or ``None`` when the entry must not be used."""
    if not isinstance(jwk, dict):
        return None
    kty = jwk.get("kty")
    # Only asymmetric key types: an ``oct`` key in a public document is never a secret.
    if not isinstance(kty, str) or kty not in ALGORITHMS_BY_KTY:
        return None
    if jwk.get("use", "sig") != "sig" or _PRIVATE_MEMBERS.intersection(jwk):
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        return None
    if kty in _CURVES and jwk.get("crv") not in _CURVES[kty]:
        return None
    compatible = [alg for alg in algorithms if alg in ALGORITHMS_BY_KTY[kty]]
    alg = jwk.get("alg")
    if alg is None:
        # Guessing between two allowed algorithms would let the token choose; skip instead.
        if len(compatible) != 1:
            return None
        alg = compatible[0]
    elif alg not in compatible:
        return None
    try:
        loaded = PyJWK(jwk, algorithm=alg)
        return _prepare_public_key(kid, alg, loaded.key)
    except (PyJWTError, ValueError, TypeError, KeyError):
        return None


def parse_jwks(document: object, algorithms: tuple[str, ...]) -> KeySet:
    """The usable keys of a JWKS document; ``ValueError`` if it is not a JWKS at all."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    keys = [key_from_jwk(jwk, algorithms) for jwk in document["keys"][:_MAX_JWKS_KEYS]]
    return KeySet.of([key for key in keys if key is not None])
