"""Settings for running the gateway: the admin listener, user ids in logs, the identity assertion.

:mod:`gateway.settings` reads and converts the options (they are in its ``SCALARS`` registry
like every other option); this module turns the converted values into typed settings and
checks what needs more than one option or a file, appending errors in the same format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

MAX_ASSERTION_TTL = 60
ASSERTION_HEADER = "X-Gateway-Assertion"


@dataclass(frozen=True, slots=True)
class AdminSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9090


@dataclass(frozen=True, slots=True)
class AssertionSettings:
    """``X-Gateway-Assertion`` (CONTRACT §6); keys already read and checked."""

    enabled: bool = False
    audience: str | None = None
    issuer: str = "gateway"
    ttl: int = 30
    header: str = ASSERTION_HEADER
    # PEM bytes: the private key is a secret, so it stays out of reprs (and so out of logs).
    key_pem: bytes | None = field(default=None, repr=False)
    previous_pems: tuple[bytes, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class OpsSettings:
    admin: AdminSettings = field(default_factory=AdminSettings)
    log_user_id: str = "hash"
    user_hash_salt: bytes | None = field(default=None, repr=False)
    assertion: AssertionSettings = field(default_factory=AssertionSettings)


def assertion_ttl(value: Any) -> int:
    """1-60 seconds: an assertion that lives longer is a bearer token worth stealing."""
    if isinstance(value, bool):
        raise ValueError
    number = int(value)
    if not 1 <= number <= MAX_ASSERTION_TTL or (isinstance(value, float)
                                                 and not value.is_integer()):
        raise ValueError
    return number


def file_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError
    paths = tuple(str(item).strip() for item in items if isinstance(item, str) and item.strip())
    if len(paths) != len(items):
        raise ValueError
    return paths


class Problems(Protocol):
    errors: list[str]

    def bad(self, source: str, path: str, expected: str, found: Any) -> None: ...


EXPECT_PRIVATE = "a readable PEM file with an EC P-256 private key"
EXPECT_PREVIOUS = "a list of readable PEM files with EC P-256 keys (private or public)"


def build_ops(
    values: Mapping[str, Any], secrets: Mapping[str, str], source: str, errors: Problems
) -> OpsSettings:
    admin = AdminSettings(
        enabled=values.get("admin.enabled", True),
        host=values.get("admin.host", "127.0.0.1"),
        port=values.get("admin.port", 9090),
    )
    if admin.enabled and admin.port == values.get("listen.port", 8080) and admin.host == \
            values.get("listen.host", "127.0.0.1"):
        errors.bad(source, "admin.port", "a port other than 'listen.port'", admin.port)
    salt = secrets.get("log.user_hash_salt")
    if salt is not None and len(salt) < 16:
        # A short salt can be guessed along with the user ids it is meant to protect.
        errors.bad(source, "log.user_hash_salt_env", "a secret of at least 16 characters",
                   "<a shorter secret>")
    return OpsSettings(
        admin=admin,
        log_user_id=values.get("log.user_id", "hash"),
        user_hash_salt=salt.encode("utf-8") if salt is not None else None,
        assertion=_assertion(values, source, errors),
    )


def _assertion(values: Mapping[str, Any], source: str, errors: Problems) -> AssertionSettings:
    enabled = values.get("assertion.enabled", False)
    audience = values.get("assertion.audience")
    if enabled and audience is None:
        errors.bad(source, "assertion.audience",
                   "set when 'assertion.enabled' is true (the backend's name, sent as 'aud')",
                   None)
    key_pem = None
    if "assertion.key_file" in values:
        key_pem = _pem(values["assertion.key_file"], private=True)
        if key_pem is None:
            errors.bad(source, "assertion.key_file", EXPECT_PRIVATE, values["assertion.key_file"])
    previous = []
    for path in values.get("assertion.previous_key_files", ()):
        pem = _pem(path, private=False)
        if pem is None:
            errors.bad(source, "assertion.previous_key_files", EXPECT_PREVIOUS, path)
        else:
            previous.append(pem)
    return AssertionSettings(
        enabled=enabled,
        audience=audience,
        issuer=values.get("assertion.issuer", "gateway"),
        ttl=values.get("assertion.ttl", 30),
        header=values.get("assertion.header", ASSERTION_HEADER),
        key_pem=key_pem,
        previous_pems=tuple(previous),
    )


def _pem(path: str, *, private: bool) -> bytes | None:
    """The file's bytes if it holds an EC P-256 key (a private one when ``private``)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return data if load_p256(data, private=private) is not None else None


def load_p256(
    data: bytes, *, private: bool
) -> ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey | None:
    key: Any
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if private:
            return None
        try:
            key = load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            return None
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return None
    if not isinstance(key.curve, ec.SECP256R1):
        return None
    return key
