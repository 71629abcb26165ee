"""Shared fixtures: a real recorder backend and a real gateway process in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.security.jwt_cases import AttackKeys, make_attack_keys, valid_token
from tests.support.procs import (
    ROOT,
    Gateway,
    Recorder,
    start_gateway,
    start_recorder,
    stop,
)

TEST_POLICIES = ROOT / "tests" / "fixtures" / "policies"
HS_SECRET_ENV = "TEST_GATEWAY_HS_SECRET"


@pytest.fixture(scope="session")
def recorder() -> Iterator[Recorder]:
    rec = start_recorder()
    yield rec
    stop(rec.proc)


@pytest.fixture(scope="session")
def keys() -> AttackKeys:
    return make_attack_keys()


def gateway_config(keys: AttackKeys, workdir: Path, upstream: str, **extra: Any) -> dict[str, Any]:
    pem = workdir / "rs-public.pem"
    workdir.mkdir(parents=True, exist_ok=True)
    pem.write_bytes(keys.rs_public_pem)
    config: dict[str, Any] = {
        "mode": "dev",
        "upstream": {"url": upstream, "read_timeout": 2, "connect_timeout": 2},
        "policies_dir": str(TEST_POLICIES),
        "jwt": {
            "issuers": [
                {
                    "issuer": keys.issuer,
                    "audience": keys.audience,
                    "keys": [
                        {"kid": keys.hs_kid, "alg": "HS256", "secret_env": HS_SECRET_ENV},
                        {"kid": keys.rs_kid, "alg": "RS256", "public_key_file": str(pem)},
                    ],
                }
            ]
        },
    }
    config.update(extra)
    return config


def gateway_env(keys: AttackKeys) -> dict[str, str]:
    return {HS_SECRET_ENV: keys.hs_secret.decode()}


@pytest.fixture(scope="session")
def gateway(
    keys: AttackKeys, recorder: Recorder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("gateway")
    gw = start_gateway(workdir, gateway_config(keys, workdir, recorder.url), gateway_env(keys))
    yield gw
    stop(gw.proc)


@pytest.fixture
def token(keys: AttackKeys) -> str:
    return valid_token(keys, sub="alice")


@pytest.fixture(autouse=True)
def _clean_recorder(request: pytest.FixtureRequest) -> None:
    if "recorder" in request.fixturenames:
        request.getfixturevalue("recorder").clear()
