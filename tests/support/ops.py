"""Helpers for the operations tests: read Prometheus text, run the app in process, make keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import GatewayApp, create_app
from gateway.settings import Settings, load_settings
from tests.conftest import HS_SECRET_ENV, gateway_config
from tests.security.jwt_cases import AttackKeys


def sample(text: str | bytes, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with exactly ``labels``; 0 when it does not exist."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return float(item.value)
    return 0.0


def settings_for(keys: AttackKeys, workdir: Path, upstream: str, **extra: Any) -> Settings:
    """The integration tests' gateway configuration, loaded for an in-process app."""
    config = gateway_config(keys, workdir, upstream, **extra)
    return load_settings(environ={HS_SECRET_ENV: keys.hs_secret.decode()}, base=config)


@asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[tuple[GatewayApp, httpx.AsyncClient]]:
    app = create_app(settings)
    await app.startup()
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
            yield app, client
    finally:
        await app.shutdown()


def write_ec_key(path: Path) -> Path:
    """A fresh EC P-256 private key as PEM (PKCS#8), like ``openssl genpkey`` writes."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path
