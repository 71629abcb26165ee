"""X-Gateway-Assertion: the backend verifies it with the JWKS the gateway publishes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import gateway_config, gateway_env
from tests.security.jwt_cases import AttackKeys, valid_token
from tests.support.ops import in_process, settings_for, write_ec_key
from tests.support.procs import Recorder, start_gateway, stop

AUDIENCE = "chat-backend"


def assertion_config(key: Path | None, *previous: Path, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"enabled": True, "audience": AUDIENCE, **extra}
    if key is not None:
        config["key_file"] = str(key)
    if previous:
        config["previous_key_files"] = [str(p) for p in previous]
    return config


def seen_assertions(recorder: Recorder) -> list[str | None]:
    found = []
    for record in recorder.requests():
        values = [v for n, v in record["headers"] if n.lower() == "x-gateway-assertion"]
        assert len(values) <= 1
        found.append(values[0] if values else None)
    return found


def verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """What a backend does: the key named by ``kid`` from the published set, ES256 only."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]  # KeyError when the set no longer has the kid
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["ES256"], audience=AUDIENCE,
                                        issuer="gateway", options={"require": ["exp", "iat"]})
    return claims


def test_assertion_carries_the_identity_and_verifies_with_the_published_keys(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> None:
    key = write_ec_key(tmp_path / "assertion.pem")
    verified = valid_token(keys, sub="bob", email="bob@example.com", email_verified=True,
                           name="Bob")
    unverified = valid_token(keys, sub="eve", email="eve@example.com")

    async def scenario() -> dict[str, Any]:
        settings = settings_for(keys, tmp_path, recorder.url, assertion=assertion_config(key))
        async with in_process(settings) as (_app, client):
            for token in (verified, verified, unverified):
                answer = await client.get("/api/x", headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 200
            # A client cannot send its own assertion; without an identity none is added.
            forged = await client.get("/public/x", headers={"X-Gateway-Assertion": "forged"})
            assert forged.status_code == 200
            jwks: dict[str, Any] = (await client.get("/auth/jwks.json")).json()
            return jwks

    jwks = asyncio.run(scenario())
    first, second, third, public = seen_assertions(recorder)
    assert first is not None and third is not None
    assert public is None
    assert second == first  # signed once, then served from the cache
    claims = verify(first, jwks)
    assert claims["sub"] == "bob"
    assert claims["auth_level"] == "authenticated"
    assert claims["email"] == "bob@example.com"
    assert claims["name"] == "Bob"
    assert claims["iss"] == "gateway"
    assert claims["aud"] == AUDIENCE
    assert 0 < claims["exp"] - claims["iat"] <= 60
    assert claims["exp"] - claims["iat"] == 30
    assert "email" not in verify(third, jwks)  # unverified e-mail stays out, as in headers
    [jwk] = jwks["keys"]
    assert jwk["kid"] == jwt.get_unverified_header(first)["kid"]
    assert jwk["alg"] == "ES256"
    assert "d" not in jwk  # public parts only


def test_rotation_old_key_verifies_while_published_and_fails_once_removed(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> None:
    key_a = write_ec_key(tmp_path / "a.pem")
    key_b = write_ec_key(tmp_path / "b.pem")
    headers = {"Authorization": f"Bearer {valid_token(keys, sub='alice')}"}

    async def published(*key_files: Path) -> tuple[str, dict[str, Any]]:
        settings = settings_for(keys, tmp_path, recorder.url,
                                assertion=assertion_config(*key_files))
        recorder.clear()
        async with in_process(settings) as (_app, client):
            assert (await client.get("/api/x", headers=headers)).status_code == 200
            jwks: dict[str, Any] = (await client.get("/auth/jwks.json")).json()
        [token] = seen_assertions(recorder)
        assert token is not None
        return token, jwks

    signed_a, jwks_a = asyncio.run(published(key_a))
    signed_b, jwks_b_and_a = asyncio.run(published(key_b, key_a))  # A kept as previous
    _, jwks_b = asyncio.run(published(key_b))  # A removed
    assert len(jwks_a["keys"]) == 1
    assert len(jwks_b_and_a["keys"]) == 2
    assert verify(signed_a, jwks_a)["sub"] == "alice"
    assert verify(signed_a, jwks_b_and_a)["sub"] == "alice"
    assert verify(signed_b, jwks_b_and_a)["sub"] == "alice"
    assert verify(signed_b, jwks_b)["sub"] == "alice"
    with pytest.raises(KeyError):
        verify(signed_a, jwks_b)
    # A forged kid does not help either: the B key does not verify A's signature.
    kid_b = jwks_b["keys"][0]["kid"]
    _, payload, signature = signed_a.split(".")
    relabelled = jwt.api_jws.base64url_encode(
        f'{{"alg":"ES256","kid":"{kid_b}","typ":"JWT"}}'.encode()).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{relabelled}.{payload}.{signature}", jwks_b)


def test_jwks_is_not_found_when_assertions_are_off(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with in_process(settings_for(keys, tmp_path, recorder.url)) as (_app, client):
            answer = await client.get("/auth/jwks.json")
            assert answer.status_code == 404
            assert answer.json()["error"] == "not_found"
            assert (await client.get("/api/x", headers={
                "Authorization": f"Bearer {valid_token(keys)}"})).status_code == 200

    asyncio.run(scenario())
    assert seen_assertions(recorder) == [None]


def test_generated_key_and_short_ttl_sign_again_when_the_cached_one_ages(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> None:
    from gateway.assertion import AssertionSigner
    from gateway.identity.model import Identity
    from gateway.settings.ops import AssertionSettings

    now = [1_800_000_000.0]
    signer = AssertionSigner(AssertionSettings(enabled=True, audience=AUDIENCE, ttl=30),
                             clock=lambda: now[0])
    alice = Identity("alice", "authenticated", expires_at=now[0] + 3600)
    first = signer.for_identity(alice)
    now[0] += 19
    assert signer.for_identity(alice) == first  # 11 s of life left: still served
    now[0] += 2
    renewed = signer.for_identity(alice)  # under 10 s left: a fresh one
    assert renewed != first
    claims = jwt.decode(renewed, jwt.PyJWKSet.from_json(signer.jwks_body.decode())[signer.kid],
                        algorithms=["ES256"], audience=AUDIENCE,
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["iat"] == int(now[0])
    # Another identity (here: elevated) never gets the cached assertion of the first.
    elevated = Identity("alice", "otp", expires_at=now[0] + 3600)
    assert signer.for_identity(elevated) != renewed


def test_backend_verifies_with_pyjwkclient_against_a_real_gateway(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> None:
    """The README's backend example, against a gateway process, word for word."""
    config = gateway_config(keys, tmp_path, recorder.url,
                            assertion=assertion_config(write_ec_key(tmp_path / "k.pem")))
    gw = start_gateway(tmp_path, config, gateway_env(keys))
    try:
        token = valid_token(keys, sub="carol")
        answer = httpx.get(f"{gw.url}/api/x", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        [assertion] = seen_assertions(recorder)
        assert assertion is not None
        jwks_client = jwt.PyJWKClient(f"{gw.url}/auth/jwks.json")
        signing_key = jwks_client.get_signing_key_from_jwt(assertion)
        claims = jwt.decode(assertion, signing_key.key, algorithms=["ES256"], audience=AUDIENCE)
        assert claims["sub"] == "carol"
        assert claims["exp"] >= time.time()
    finally:
        stop(gw.proc)
