"""A gateway configured with one-time codes (real SMTP and SMS receivers) and optionally Redis.

Shared by the replica, restart, outage and GDPR tests, which all need the same stack: the
recorder backend, a customer directory, senders that deliver for real, and the environment
that points a gateway process at this test session's Redis prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import gateway_config, gateway_env
from tests.security.jwt_cases import AttackKeys
from tests.support.procs import free_port
from tests.support.redis import RedisTarget

OTP_HASH_ENV = "TEST_GATEWAY_OTP_HASH_KEY"
OTP_HASH_KEY = "replicas-share-this-otp-hash-key-0123456789"
COOKIE = "gw_session"  # the dev-mode cookie name

DIRECTORY = """
alice: {email: alice@example.com, channel: email}
C-1001: {phone: "+4915100001001", channel: sms}
race-1: {email: race-1@example.com}
gdpr-1: {email: gdpr-1@example.com}
gdpr-2: {email: gdpr-2@example.com}
gdpr-cli: {email: gdpr-cli@example.com}
restart-1: {email: restart-1@example.com}
"""


def otp_config(
    keys: AttackKeys, workdir: Path, upstream: str, smtp_port: int, webhook_url: str,
    **extra: Any,
) -> dict[str, Any]:
    """The integration config plus a directory, both senders and a shared OTP hash key."""
    workdir.mkdir(parents=True, exist_ok=True)
    directory = workdir / "customers.yaml"
    directory.write_text(DIRECTORY)
    config = gateway_config(
        keys, workdir, upstream,
        directory={"kind": "file", "path": str(directory)},
        senders={
            "email": {"kind": "smtp", "host": "127.0.0.1", "port": smtp_port,
                      "from": "codes@gateway.example"},
            "sms": {"kind": "webhook", "url": webhook_url},
        },
        otp={"ip_send_limit": 10_000, "ip_verify_limit": 100_000,
             "hash_key_env": OTP_HASH_ENV},
        # Each process gets its own admin port, so that several can run side by side.
        admin={"port": free_port()},
    )
    config.update(extra)
    return config


def redis_env(keys: AttackKeys, target: RedisTarget, prefix: str) -> dict[str, str]:
    """The environment of a gateway process on this session's Redis, under ``prefix``."""
    return {
        **gateway_env(keys),
        OTP_HASH_ENV: OTP_HASH_KEY,
        "GATEWAY_STORE_URL": target.url,
        "GATEWAY_STORE_PREFIX": prefix,
    }


def cookie_of(response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == COOKIE:
            return rest.split(";")[0]
    raise AssertionError(f"no session cookie in {response.headers}")


def with_cookie(cookie: str, **headers: str) -> dict[str, str]:
    # A Cookie header rather than httpx's per-request cookies (deprecated, so an error here).
    return {"Cookie": f"{COOKIE}={cookie}", **headers}


def seen_header(record: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in record["headers"] if n.lower() == name]
