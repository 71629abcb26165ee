"""Fixtures for the JWT verifier tests: a settable clock, key material, token builders."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tests.support.clock import FakeClock as SharedClock

T = TypeVar("T")

_JWS = jwt.PyJWS()

NOW = 1_750_000_000.0
ISSUER = "https://idp.example.test"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one test's async body; pytest-asyncio is deliberately not a dependency."""
    return asyncio.run(coro)


class FakeClock(SharedClock):
    def __init__(self, now: float = NOW) -> None:
        super().__init__(now)

@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass(frozen=True)
class AsymmetricKey:
    alg: str
    # The key object signs; loading a PEM private key per token costs ~40 ms for RSA.
    private: Any
    private_pem: bytes
    public_pem: bytes
    public_jwk: dict[str, Any]


def _pem_pair(private: Any) -> tuple[bytes, bytes]:
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def _asymmetric(alg: str, private: Any, to_jwk: Any) -> AsymmetricKey:
    private_pem, public_pem = _pem_pair(private)
    public_jwk = to_jwk(private.public_key(), as_dict=True)
    return AsymmetricKey(alg, private, private_pem, public_pem, public_jwk)


@pytest.fixture(scope="session")
def rsa_key() -> AsymmetricKey:
    return _asymmetric(
        "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm.to_jwk
    )


@pytest.fixture(scope="session")
def rsa_key_2() -> AsymmetricKey:
    """A second RSA key, for rotation in a JWKS."""
    return _asymmetric(
        "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm.to_jwk
    )


@pytest.fixture(scope="session")
def ec_key() -> AsymmetricKey:
    return _asymmetric("ES256", ec.generate_private_key(ec.SECP256R1()), ECAlgorithm.to_jwk)


@pytest.fixture(scope="session")
def ed_key() -> AsymmetricKey:
    return _asymmetric("EdDSA", ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm.to_jwk)


def claims(sub: Any = "alice", *, now: float = NOW, ttl: int = 300, **extra: Any) -> dict[str, Any]:
    """Claims valid at ``now``; an extra claim set to None is removed."""
    payload: dict[str, Any] = {"iss": ISSUER, "sub": sub, "iat": int(now), "exp": int(now) + ttl}
    payload.update(extra)
    return {name: value for name, value in payload.items() if value is not None}


def sign(
    payload: dict[str, Any],
    key: Any,
    alg: str = "HS256",
    kid: str | None = "k1",
    **headers: Any,
) -> str:
    """A token signed by PyJWS: trusted to sign, and unlike ``jwt.encode`` it signs any claims."""
    all_headers = dict(headers)
    if kid is not None:
        all_headers["kid"] = kid
    return _JWS.encode(json.dumps(payload).encode(), key, alg, all_headers)


def hs_secret(size: int = 32) -> bytes:
    return secrets.token_bytes(size)
