"""Configuration of JWT verification: issuers, their keys, and the verifier's limits.

The settings loader builds these values from YAML and ``GATEWAY_*`` variables (secrets already
read from their env var or file); :func:`check_jwt_settings` lists every structural problem so
that the loader, and the verifier's constructor, can report them all at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

# Digest size of each HMAC algorithm: RFC 7518 §3.2 requires a secret at least this long.
HMAC_MIN_SECRET_BYTES: Final[dict[str, int]] = {"HS256": 32, "HS384": 48, "HS512": 64}

# Asymmetric algorithms, grouped by the JWK key type (``kty``) that can carry them.
ALGORITHMS_BY_KTY: Final[dict[str, tuple[str, ...]]] = {
    "RSA": ("RS256", "PS256"),
    "EC": ("ES256",),
    "OKP": ("EdDSA",),
}
# Tuples rather than sets, so that error messages list them in a stable, familiar order.
ASYMMETRIC_ALGORITHMS: Final[tuple[str, ...]] = tuple(
    alg for algs in ALGORITHMS_BY_KTY.values() for alg in algs
)
SUPPORTED_ALGORITHMS: Final[tuple[str, ...]] = (*HMAC_MIN_SECRET_BYTES, *ASYMMETRIC_ALGORITHMS)


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """One verification key; it verifies exactly one algorithm."""

    kid: str
    alg: str
    # Left out of repr so that a log line or traceback that shows a key never shows a secret.
    secret: bytes | None = field(default=None, repr=False)
    public_key_pem: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class JwksConfig:
    url: str
    algorithms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    issuer: str
    keys: tuple[KeyConfig, ...] = ()
    jwks: JwksConfig | None = None
    audience: str | None = None
    subject_claim: str = "sub"
    required_scope: str | None = None
    max_lifetime: int | None = None


@dataclass(frozen=True, slots=True)
class JWTSettings:
    issuers: tuple[IssuerConfig, ...] = ()
    leeway: int = 120
    cache_size: int = 10_000
    jwks_min_refetch_interval: float = 30.0
    jwks_cache_ttl: float = 300.0
    jwks_timeout: float = 5.0
    max_token_bytes: int = 8192


def check_jwt_settings(settings: JWTSettings) -> list[str]:
    """Every structural problem in ``settings``, one message each (empty when fine).

    Key material itself (PEM parsing, curve, RSA size) is checked where it is loaded, in
    :mod:`gateway.identity.jwt_keyring`. Messages name the setting and never contain a secret.
    """
    errors: list[str] = []
    for name, value in (
        ("leeway", settings.leeway),
        ("jwks_min_refetch_interval", settings.jwks_min_refetch_interval),
    ):
        if value < 0:
            errors.append(f"jwt.{name} must be 0 or more, but it's configured as {value}")
    for name, value in (
        ("cache_size", settings.cache_size),
        ("max_token_bytes", settings.max_token_bytes),
        ("jwks_cache_ttl", settings.jwks_cache_ttl),
        ("jwks_timeout", settings.jwks_timeout),
    ):
        if value <= 0:
            errors.append(f"jwt.{name} must be more than 0, but it's configured as {value}")
    seen: set[str] = set()
    for index, issuer in enumerate(settings.issuers):
        where = f"jwt.issuers[{index}] ({issuer.issuer!r})"
        if not issuer.issuer:
            errors.append(f"{where}: option 'issuer' must not be empty")
        if issuer.issuer in seen:
            errors.append(f"{where}: issuer is configured more than once")
        seen.add(issuer.issuer)
        if not issuer.keys and issuer.jwks is None:
            errors.append(f"{where}: needs 'keys' or 'jwks', but it has neither")
        if not issuer.subject_claim:
            errors.append(f"{where}: option 'subject_claim' must not be empty")
        if issuer.max_lifetime is not None and issuer.max_lifetime <= 0:
            errors.append(
                f"{where}: option 'max_lifetime' must be a positive number of seconds, "
                f"but it's configured as {issuer.max_lifetime}"
            )
        kids: set[str] = set()
        for key in issuer.keys:
            if key.kid in kids:
                errors.append(f"{where}: key id {key.kid!r} is configured more than once")
            kids.add(key.kid)
        if issuer.jwks is not None:
            errors.extend(_check_jwks(where, issuer.jwks))
    return errors


def _check_jwks(where: str, jwks: JwksConfig) -> list[str]:
    errors: list[str] = []
    if not jwks.url.startswith(("https://", "http://")):
        errors.append(f"{where}: option 'jwks.url' must be an http(s) URL")
    if not jwks.algorithms:
        errors.append(f"{where}: option 'jwks.algorithms' must list at least one algorithm")
    for alg in jwks.algorithms:
        # A JWKS is public; an HMAC secret published in one would let anyone mint tokens.
        if alg not in ASYMMETRIC_ALGORITHMS:
            errors.append(
                f"{where}: option 'jwks.algorithms' must be among "
                f"{', '.join(ASYMMETRIC_ALGORITHMS)}, but it's configured as {alg!r}"
            )
    return errors
