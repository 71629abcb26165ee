"""Every attack in the catalogue is refused by the verifier, for the reason we expect.

A real HTTP listener stands in for the attacker's server named by ``jku``/``x5u`` headers and
serves the attacker's JWKS: a verifier that ever followed those headers would be caught by its
request count, which must stay at zero.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.errors import TokenExpired, TokenInvalid
from gateway.identity.jwt import JWTVerifier

from .jwt_cases import (
    ATTACKS,
    EXPECTED_REASONS,
    VERIFIER_ONLY_ATTACKS,
    AttackKeys,
    attacker_jwk,
    expected_error,
    jwt_settings_for,
    make_attack_keys,
    valid_rs_token,
    valid_token,
)


@dataclass
class Listener:
    url: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    body = json.dumps({"keys": [attacker_jwk()]}).encode()
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass  # Keep test output quiet; the hit list is the record.

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Listener(f"http://127.0.0.1:{server.server_address[1]}", hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def keys() -> AttackKeys:
    return make_attack_keys()


@pytest.fixture(scope="module")
def verifier(keys: AttackKeys) -> JWTVerifier:
    return JWTVerifier(jwt_settings_for(keys))


ALL_ATTACKS = ATTACKS + VERIFIER_ONLY_ATTACKS


def test_catalogue_and_expected_reasons_match() -> None:
    ids = [attack_id for attack_id, _ in ALL_ATTACKS]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(EXPECTED_REASONS)


def test_controls_are_accepted(verifier: JWTVerifier, keys: AttackKeys) -> None:
    for token in (valid_token(keys), valid_rs_token(keys), valid_token(keys, sub="bob", x=1)):
        identity = asyncio.run(verifier.verify(token))
        assert identity.issuer == keys.issuer


def test_the_listener_would_notice_a_fetch(listener: Listener) -> None:
    # Guards the guard: prove the zero-hit assertions below measure something real.
    from urllib.request import urlopen

    with urlopen(f"{listener.url}/probe", timeout=5) as response:  # noqa: S310
        assert json.load(response)["keys"][0]["kid"] == "attacker"
    assert listener.hits == ["/probe"]
    listener.hits.clear()


@pytest.mark.parametrize(("attack_id", "make"), ALL_ATTACKS, ids=[a for a, _ in ALL_ATTACKS])
def test_attack_is_refused(
    verifier: JWTVerifier,
    keys: AttackKeys,
    listener: Listener,
    attack_id: str,
    make: object,
) -> None:
    assert callable(make)
    token = make(keys, listener.url)
    with pytest.raises((TokenInvalid, TokenExpired)) as info:
        asyncio.run(verifier.verify(token))
    assert info.value.reason == EXPECTED_REASONS[attack_id]
    assert info.value.code == expected_error(attack_id)
    # A refusal never leaves anything behind in the cache.
    assert verifier.verify_cached(token) is None
    assert listener.hits == []
