from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.settings import load_settings

SECRET = "s" * 40


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(environ={})
    assert settings.upstream.url == "http://127.0.0.1:9000"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.jwt.leeway == 120
    assert settings.mode == "production"


def test_env_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "upstream:\n  url: http://a:1\nlisten:\n  port: 8081\n")
    settings = load_settings(
        path,
        {
            "GATEWAY_UPSTREAM_URL": "http://b:2",
            "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
        },
    )
    assert settings.upstream.url == "http://b:2"
    assert settings.upstream.port == 2
    assert settings.listen_port == 8081
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.1/32")


def test_hmac_ring_from_env_and_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "k2.secret"
    secret_file.write_text(SECRET + "\n")
    keys = "\n".join(f"        - {{kid: k{i}, alg: HS256, secret_env: KEY_{i}}}" for i in range(10))
    path = write(
        tmp_path,
        f"""
jwt:
  issuers:
    - issuer: https://shop.example
      audience: chatbot
      keys:
{keys}
        - {{kid: file-key, alg: HS512, secret_file: {secret_file}}}
""",
    )
    env = {f"KEY_{i}": SECRET + str(i) for i in range(10)}
    settings = load_settings(path, env)
    [issuer] = settings.jwt.issuers
    assert len(issuer.keys) == 11
    assert issuer.keys[-1].secret == SECRET.encode()
    assert issuer.keys[3].secret == (SECRET + "3").encode()


def test_every_error_is_listed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
mode: staging
listen: {port: 0}
upstream: {url: "http://backend/path", max_idle: many}
jwt:
  issuers:
    - issuer: https://a
      subject_claim: email
      keys:
        - {kid: k, alg: HS256, secret_env: UNSET_VAR}
        - {kid: k, alg: RS256, public_key_file: /nonexistent.pem}
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"GATEWAY_JWT_LEEWAY": "-5", "GATEWAY_NOPE": "1"})
    p = str(path)
    assert caught.value.errors == [
        f"{p}: option 'mode' must be one of 'production', 'dev' but it's configured as 'staging'",
        f"{p}: option 'listen.port' must be a port number (1-65535) but it's configured as '0'",
        f"{p}: option 'upstream.url' must be an http:// URL with a host and no path "
        "but it's configured as 'http://backend/path'",
        f"{p}: option 'upstream.max_idle' must be a positive integer but it's configured as 'many'",
        "GATEWAY_JWT_LEEWAY: option 'jwt.leeway' must be a non-negative integer (seconds) "
        "but it's configured as '-5'",
        "environment: GATEWAY_NOPE is not a known setting (known: GATEWAY_CONFIG and GATEWAY_ + "
        "an option path, e.g. GATEWAY_UPSTREAM_URL)",
        f"{p}: option 'jwt.issuers[1].subject_claim' must be one of 'sub', 'external_id' but "
        "it's configured as 'email'",
        f"{p}: option 'jwt.issuers[1].keys[1].secret_env' must be the name of a set environment "
        "variable but it's configured as 'UNSET_VAR'",
        f"{p}: option 'jwt.issuers[1].keys[2].kid' must be unique within the issuer but it's "
        "configured as 'k'",
        f"{p}: option 'jwt.issuers[1].keys[2].public_key_file' must be a readable file path but "
        "it's configured as '/nonexistent.pem'",
        f"{p}: option 'jwt.issuers[1].keys' must be at least one key (or a 'jwks' section) but "
        "it's configured as '<missing>'",
    ]


def test_inline_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
jwt:
  issuers:
    - issuer: https://a
      keys: [{kid: k, alg: HS256, secret: do-not-print-me}]
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    text = "\n".join(caught.value.errors)
    assert "secrets never live in the config file" in text
    assert "do-not-print-me" not in text


def test_yaml_syntax_and_duplicate_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "mode: dev\nmode: production\n"), {})
    assert caught.value.errors == [
        f"{tmp_path / 'gateway.yaml'}: invalid YAML at line 2, column 1: "
        "duplicate key 'mode' (first defined at line 1)"
    ]
