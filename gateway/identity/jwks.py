"""Verification keys, prepared once, and the JWKS fetcher that keeps an issuer's keys fresh.

A :class:`PreparedKey` is bound to exactly one algorithm and holds what ``jwt.decode`` takes
without further parsing: the HMAC secret, or a ``cryptography`` public key object. Keys come
from configuration (:func:`prepare_config_key`) or from an issuer's JWKS URL
(:class:`JwksFetcher`); never from a token's own headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from cachetools import TTLCache
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
    JwksConfig,
    KeyConfig,
)
from gateway.tasks import cancel_and_wait

logger = logging.getLogger("gateway.jwt")

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
_MAX_JWKS_BYTES: Final = 1 << 20
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


class _JwksError(Exception):
    """A JWKS fetch failed for a reason we describe ourselves (safe to log)."""


def safe_url(url: str) -> str:
    """``url`` without credentials, query or fragment, which may hold secrets, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class JwksFetcher:
    """One issuer's JWKS: last good key set, TTL freshness, rate-limited shared refetches."""

    def __init__(
        self,
        config: JwksConfig,
        client: httpx.AsyncClient,
        *,
        timeout: float,
        min_refetch_interval: float,
        cache_ttl: float,
        clock: Callable[[], float],
    ) -> None:
        self._url = config.url
        self._log_url = safe_url(config.url)
        self._algorithms = config.algorithms
        self._client = client
        self._timeout = timeout
        self._min_interval = min_refetch_interval
        self._clock = clock
        # Holds the set while it is fresh; the entry expiring is what triggers a refresh.
        self._fresh: TTLCache[str, KeySet] = TTLCache(maxsize=1, ttl=cache_ttl, timer=clock)
        # Survives expiry and failed fetches: an IdP outage must not log every user out.
        self._last_good: KeySet | None = None
        self._attempted_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None

    @property
    def keys(self) -> KeySet:
        return self._last_good or EMPTY_KEY_SET

    async def find(self, kid: str | None) -> PreparedKey | None:
        if self._url not in self._fresh:
            if self._last_good is None:
                await self.refresh()
            else:
                # Known keys keep working while a stale set is refreshed off the request path.
                self._start_fetch()
        key = self.keys.find(kid)
        if key is None:
            await self.refresh()
            key = self.keys.find(kid)
        return key

    async def refresh(self) -> None:
        """Fetch now unless a fetch ran within the minimum interval; join one in flight."""
        task = self._start_fetch()
        if task is not None:
            # Shielded: a request that gives up must not cancel a fetch others are waiting on.
            await asyncio.shield(task)

    async def wait_idle(self) -> None:
        """Wait for a fetch in flight, if any (used by tests and shutdown)."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)

    async def aclose(self) -> None:
        task, self._inflight = self._inflight, None
        await cancel_and_wait(task)

    def _start_fetch(self) -> asyncio.Task[None] | None:
        if self._inflight is not None:
            return self._inflight
        now = self._clock()
        # Bounds fetches per issuer, so a flood of random kids cannot become a flood of
        # requests to the IdP.
        if self._attempted_at is not None and now - self._attempted_at < self._min_interval:
            return None
        self._attempted_at = now
        task = asyncio.get_running_loop().create_task(self._fetch())
        self._inflight = task
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._download()
            try:
                document = json.loads(body)
            except (ValueError, RecursionError):
                raise _JwksError("the document is not JSON") from None
            try:
                keys = parse_jwks(document, self._algorithms)
            except ValueError:
                raise _JwksError("the document is not a JWK set") from None
            if not keys.keys:
                raise _JwksError("the JWK set has no usable signing keys")
        # Any failure at all (network, status, size, content) keeps the last good set. Only
        # our own messages or an exception's type are logged: never the body, never the query.
        except Exception as error:
            detail = str(error) if isinstance(error, _JwksError) else type(error).__name__
            logger.warning(
                "JWKS fetch from %s failed (%s); keeping the last good key set",
                self._log_url,
                detail,
            )
            return
        self._last_good = keys
        self._fresh[self._url] = keys
        logger.info("JWKS from %s loaded: %d usable keys", self._log_url, len(keys.keys))

    async def _download(self) -> bytes:
        headers = {"accept": "application/json"}
        # Redirects are not followed whatever the shared client's default: the operator
        # configured this URL, and a redirect could downgrade it to plain http or another host.
        async with self._client.stream(
            "GET", self._url, headers=headers, timeout=self._timeout, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise _JwksError(f"HTTP status {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > _MAX_JWKS_BYTES:
                    raise _JwksError("the document is larger than 1 MiB")
                chunks.append(chunk)
            return b"".join(chunks)
