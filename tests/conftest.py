"""Shared fixtures: a real recorder backend and a real gateway process in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.security.jwt_cases import AttackKeys, make_attack_keys, valid_token
from tests.support import procs
from tests.support.delivery import codes_received
from tests.support.log_scan import COOKIES_SEEN, recording_cookies, scan_files
from tests.support.procs import (
    ROOT,
    Gateway,
    Recorder,
    start_gateway,
    start_recorder,
    stop,
)
from tests.support.redis import RedisTarget, connect_or_skip

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


@pytest.fixture(scope="session")
def redis_target() -> Iterator[RedisTarget]:
    """A reachable Redis and this session's key prefix; only that prefix is deleted after."""
    target = connect_or_skip()
    yield target
    target.delete_prefix()


@pytest.fixture(scope="session", autouse=True)
def _record_cookies() -> Iterator[None]:
    """Every Set-Cookie value a test receives, for the log scan below."""
    with recording_cookies():
        yield


@pytest.hookimpl(trylast=True)  # After session fixtures stopped the gateways (logs flushed).
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if any gateway process logged a token, code, cookie or secret (§5)."""
    gateways = procs.STARTED
    if not gateways:
        return
    for gateway in gateways:
        stop(gateway.proc)  # Normally stopped already; a leaked one flushes its log now.
    secrets = {value for gateway in gateways for value in gateway.secrets}
    paths = [p for gateway in gateways for p in (gateway.stdout_path, gateway.stderr_path)]
    lines, findings = scan_files(sorted(set(paths)), codes=codes_received(),
                                 cookies=set(COOKIES_SEEN), secrets=secrets)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if reporter is not None:
        reporter.write_line(
            f"log scan: {lines} lines from {len(gateways)} gateway processes, "
            f"{len(findings)} leaks", red=bool(findings), green=not findings)
        for finding in findings:
            reporter.write_line(f"  LEAK {finding}", red=True)
