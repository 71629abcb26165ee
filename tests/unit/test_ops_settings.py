"""Settings of the admin listener, user ids in logs and the identity assertion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.errors import ConfigError
from gateway.settings import load_settings
from tests.support.ops import write_ec_key


def errors_of(base: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ or {}, base=base)
    return caught.value.errors


def test_defaults() -> None:
    ops = load_settings(environ={}).ops
    assert (ops.admin.enabled, ops.admin.host, ops.admin.port) == (True, "127.0.0.1", 9090)
    assert ops.log_user_id == "hash"
    assert ops.user_hash_salt is None
    assert ops.assertion.enabled is False
    assert ops.assertion.ttl == 30
    assert ops.assertion.issuer == "gateway"
    assert ops.assertion.header == "X-Gateway-Assertion"


def test_environment_overrides() -> None:
    ops = load_settings(environ={
        "GATEWAY_ADMIN_PORT": "9191", "GATEWAY_ADMIN_HOST": "0.0.0.0",
        "GATEWAY_ADMIN_ENABLED": "false", "GATEWAY_LOG_USER_ID": "plain",
        "GATEWAY_ASSERTION_TTL": "45",
    }).ops
    assert (ops.admin.enabled, ops.admin.host, ops.admin.port) == (False, "0.0.0.0", 9191)
    assert ops.log_user_id == "plain"
    assert ops.assertion.ttl == 45


def test_salt_comes_from_a_secret_never_from_the_file() -> None:
    ops = load_settings(environ={"LOG_SALT": "s" * 32},
                        base={"log": {"user_hash_salt_env": "LOG_SALT"}}).ops
    assert ops.user_hash_salt == b"s" * 32
    assert "s" * 32 not in repr(ops)
    assert errors_of({"log": {"user_hash_salt": "inline"}}) == [
        "<defaults>: option 'log.user_hash_salt' is not allowed: secrets never live in the "
        "config file; use 'user_hash_salt_env' (an environment variable) or "
        "'user_hash_salt_file'"]
    assert errors_of({"log": {"user_hash_salt_env": "LOG_SALT"}}, {"LOG_SALT": "short"}) == [
        "<defaults>: option 'log.user_hash_salt_env' must be a secret of at least 16 "
        "characters but it's configured as '<a shorter secret>'"]


def test_every_problem_is_listed(tmp_path: Path) -> None:
    rsa_pem = tmp_path / "rsa.pem"
    rsa_pem.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                        .private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    assert errors_of({
        "listen": {"port": 9090},
        "log": {"user_id": "md5"},
        "assertion": {"enabled": True, "ttl": 61, "key_file": str(rsa_pem),
                      "previous_key_files": [str(tmp_path / "missing.pem")]},
    }) == [
        "<defaults>: option 'log.user_id' must be one of 'hash', 'plain', 'none' but it's "
        "configured as 'md5'",
        "<defaults>: option 'assertion.ttl' must be a number of seconds from 1 to 60 but it's "
        "configured as '61'",
        "<defaults>: option 'admin.port' must be a port other than 'listen.port' but it's "
        "configured as '9090'",
        "<defaults>: option 'assertion.audience' must be set when 'assertion.enabled' is true "
        "(the backend's name, sent as 'aud') but it's configured as '<missing>'",
        f"<defaults>: option 'assertion.key_file' must be a readable PEM file with an EC "
        f"P-256 private key but it's configured as '{rsa_pem}'",
        f"<defaults>: option 'assertion.previous_key_files' must be a list of readable PEM "
        f"files with EC P-256 keys (private or public) but it's configured as "
        f"'{tmp_path / 'missing.pem'}'",
    ]


def test_previous_keys_may_be_public_only(tmp_path: Path) -> None:
    current = write_ec_key(tmp_path / "current.pem")
    old = ec.generate_private_key(ec.SECP256R1()).public_key()
    old_pem = tmp_path / "old.pub.pem"
    old_pem.write_bytes(old.public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    p384 = tmp_path / "p384.pem"
    p384.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    settings = load_settings(environ={"GATEWAY_ASSERTION_PREVIOUS_KEY_FILES": str(old_pem)},
                             base={"assertion": {"enabled": True, "audience": "bot",
                                                 "key_file": str(current)}})
    assert len(settings.ops.assertion.previous_pems) == 1
    assert "key_pem" not in repr(settings.ops.assertion)
    assert errors_of({"assertion": {"key_file": str(p384)}}) == [
        f"<defaults>: option 'assertion.key_file' must be a readable PEM file with an EC "
        f"P-256 private key but it's configured as '{p384}'"]
