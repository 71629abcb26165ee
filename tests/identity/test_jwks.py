"""Keys from a JWKS URL: fetching, rate-limited refetch, rotation, IdP failures, key filtering.

The IdP is a third-party service, so it is mocked with respx; the clock is a FakeClock, so the
30 s refetch interval and the 300 s cache TTL pass without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.errors import TokenInvalid
from gateway.identity.jwk_keys import key_from_jwk, parse_jwks
from gateway.identity.jwks import JwksFetcher
from gateway.identity.jwt import JWTVerifier
from gateway.identity.jwt_config import IssuerConfig, JwksConfig, JWTSettings, KeyConfig

from .conftest import ISSUER, AsymmetricKey, FakeClock, claims, hs_secret, run, sign

HOST = "idp.example.test"
PATH = "/.well-known/jwks.json"
# The query string stands in for a tenant secret some IdPs put there: it must never be logged.
URL = f"https://{HOST}{PATH}?tenant=query-secret"


def jwk(key: AsymmetricKey, kid: str | None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {**key.public_jwk, "kid": kid, "alg": key.alg, "use": "sig", **extra}
    return {name: value for name, value in entry.items() if value is not None}


def jwks(*keys: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"keys": list(keys)})


def jwks_issuer(
    algorithms: tuple[str, ...] = ("RS256",), keys: tuple[KeyConfig, ...] = ()
) -> IssuerConfig:
    return IssuerConfig(ISSUER, keys=keys, jwks=JwksConfig(URL, algorithms))


def make(clock: FakeClock, *issuers: IssuerConfig, **options: Any) -> JWTVerifier:
    return JWTVerifier(JWTSettings(issuers=issuers or (jwks_issuer(),), **options), clock=clock)


class Idp:
    """The mocked IdP: answers in turn (the last one repeats) and counts requests as they
    arrive (respx only records a call once its answer is ready, which a hang never is)."""

    def __init__(self, *answers: Any) -> None:
        self._answers = list(answers)
        self.requests: list[httpx.Request] = []

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self._answers[min(len(self.requests), len(self._answers)) - 1]
        if isinstance(answer, type) and issubclass(answer, httpx.RequestError):
            raise answer("mocked failure", request=request)
        if callable(answer):
            result: httpx.Response = await answer(request)
            return result
        assert isinstance(answer, httpx.Response)
        return answer


def with_idp(body: Callable[[Idp], Awaitable[None]], *answers: Any) -> None:
    """Run ``body`` against a mocked IdP at ``URL``."""

    async def main() -> None:
        idp = Idp(*answers)
        # Tests assert idp.calls themselves, including "no call at all".
        with respx.mock(assert_all_called=False) as mock:
            mock.route(host=HOST, path=PATH).mock(side_effect=idp)
            await body(idp)

    run(main())


def token(key: AsymmetricKey, kid: str | None, sub: str = "alice", **extra: Any) -> str:
    return sign(claims(sub, **extra), key.private, key.alg, kid=kid)


async def reason(v: JWTVerifier, tok: str) -> str:
    with pytest.raises(TokenInvalid) as info:
        await v.verify(tok)
    return info.value.reason


def random_kid() -> str:
    return secrets.token_urlsafe(8)


# Fetching -------------------------------------------------------------------------------------


def test_initial_fetch_serves_every_later_verification(
    clock: FakeClock, rsa_key: AsymmetricKey
) -> None:
    async def body(idp: Idp) -> None:
        v = make(clock)
        try:
            await v.start()
            assert idp.calls == 1
            assert idp.requests[-1].url.query == b"tenant=query-secret"
            for n in range(5):
                clock.advance(10)
                assert (await v.verify(token(rsa_key, "r1", f"u{n}"))).user_id == f"u{n}"
            assert idp.calls == 1
        finally:
            await v.aclose()

    with_idp(body, jwks(jwk(rsa_key, "r1")))


def test_start_fetches_every_issuer_concurrently(clock: FakeClock, rsa_key: AsymmetricKey) -> None:
    async def main() -> None:
        with respx.mock() as mock:
            one = mock.get("https://one.test/jwks").mock(return_value=jwks(jwk(rsa_key, "r1")))
            two = mock.get("https://two.test/jwks").mock(return_value=httpx.Response(503))
            v = make(
                clock,
                IssuerConfig(
                    "https://one.test", jwks=JwksConfig("https://one.test/jwks", ("RS256",))
                ),
                IssuerConfig(
                    "https://two.test", jwks=JwksConfig("https://two.test/jwks", ("RS256",))
                ),
            )
            try:
                await v.start()  # One IdP down is logged, not fatal.
                assert (one.call_count, two.call_count) == (1, 1)
                tok = sign(claims(iss="https://one.test"), rsa_key.private, "RS256", kid="r1")
                assert (await v.verify(tok)).issuer == "https://one.test"
            finally:
                await v.aclose()

    run(main())


def test_without_start_the_first_verification_fetches(
    clock: FakeClock, rsa_key: AsymmetricKey
) -> None:
    async def body(idp: Idp) -> None:
        v = make(clock)
        try:
            assert (await v.verify(token(rsa_key, "r1"))).user_id == "alice"
            assert idp.calls == 1
        finally:
            await v.aclose()

    with_idp(body, jwks(jwk(rsa_key, "r1")))


def test_failed_start_is_retried_after_the_interval(
    clock: FakeClock, rsa_key: AsymmetricKey
) -> None:
    async def body(idp: Idp) -> None:
        v = make(clock)
        try:
            await v.start()
            assert await reason(v, token(rsa_key, "r1")) == "unknown_kid"
            assert idp.calls == 1
            clock.advance(30)
            assert (await v.verify(token(rsa_key, "r1"))).user_id == "alice"
            assert idp.calls == 2
        finally:
            await v.aclose()

    with_idp(body, httpx.Response(500), jwks(jwk(rsa_key, "r1")))


def test_static_keys_are_looked_up_before_the_jwks(
    clock: FakeClock, rsa_key: AsymmetricKey
) -> None:
    secret = hs_secret()

    async def body(idp: Idp) -> None:
        v = make(clock, jwks_issuer(keys=(KeyConfig("h1", "HS256", secret=secret),)))
        try:
            assert (await v.verify(sign(claims(), secret, kid="h1"))).user_id == "alice"
            assert idp.calls == 0
        finally:
            await v.aclose()

    with_idp(body, jwks(jwk(rsa_key, "r1")))


def test_token_without_kid_uses_the_only_jwks_key(
    clock: FakeClock, rsa_key: AsymmetricKey, rsa_key_2: AsymmetricKey
) -> None:
    async def single(_idp: Idp) -> None:
        v = make(clock)
        try:
            assert (await v.verify(token(rsa_key, None))).user_id == "alice"
        finally:
            await v.aclose()

    async def two(_idp: Idp) -> None:
        v = make(clock)
        try:
            # Two keys: without a kid the token would get to choose, so it is refused.
            assert await reason(v, token(rsa_key, None)) == "unknown_kid"
        finally:
            await v.aclose()

    with_idp(single, jwks(jwk(rsa_key, "r1")))
    with_idp(two, jwks(jwk(rsa_key, "r1"), jwk(rsa_key_2, "r2")))


# Refetching on unknown kids -------------------------------------------------------------------


def test_unknown_kid_triggers_one_refetch(
    clock: FakeClock, rsa_key: AsymmetricKey, rsa_key_2: AsymmetricKey
) -> None:
    async def body(idp: Idp) -> None:
        v = make(clock)
        try:
            await v.start()
            clock.advance(30)
            assert (await v.verify(token(rsa_key_2, "r2"))).user_id == "alice"
            assert idp.calls == 2
        finally:
            await v.aclose()

    with_idp(body, jwks(jwk(rsa_key, "r1")), jwks(jwk(rsa_key, "r1"), jwk(rsa_key_2, "r2")))


def test_a_flood_of_random_kids_causes_at_most_one_fetch_per_interval(
    clock: FakeClock, rsa_key: AsymmetricKey
) -> None:
    async def body(idp: Idp) -> None:
        v = make(clock)
        try:
            await v.start()
            clock.advance(30)
            for _ in range(100):
                clock.advance(0.29)  # 100 tokens within 29 s.
                assert await reason(v, token(rsa_key, random_kid())) == "unknown_kid"
            assert idp.calls == 2
        finally:
            await v.aclose()

    with_idp(body, jwks(jwk(rsa_key, "r1")))


def test_concurrent_verifications_share_one_fetch(
    clock: FakeClock, rsa_key: AsymmetricKey, rsa_key_2: AsymmetricKey
) -> None:
    async def slow_idp(_request: httpx.Request) -> httpx.Response:
        for _ in range(5):
            await asyncio.sleep(0)  # Let every other verification arrive while this one runs.
        return jwks(jwk(rsa_key, "r1"), jwk(rsa_key_2, "r2"))

    async def body(idp: Idp) -> None:
        v = make(clock)
        try:
            new = [token(rsa_key_2, "r2", f"u{n}") for n in range(20)]
            junk = [token(rsa_key, random_kid()) for _ in range(100)]
            results = await asyncio.gather(
                *(v.verify(tok) for tok in new + junk), return_exceptions=True
            )
            assert idp.calls == 1
            assert [getattr(r, "user_id", r) for r in results[:20]] == [f"u{n}" for n in range(20)]
            assert all(isinstance(r, TokenInvalid) for r in results[20:])
        finally:
            await v.aclose()

    with_idp(body, slow_idp)


def test_rotation_is_picked_up_after_the_min_interval(
    clock: FakeClock, rsa_key: AsymmetricKey, rsa_key_2: AsymmetricKey
) -> None:
    async def body(idp: Idp) -> None:
        v = make(clock)
        try:
            await v.start()
            old = token(rsa_key, "r1", "before-rotation")
            await v.verify(old)
            clock.advance(10)
            # The IdP already rotated, but we fetched 10 s ago: the new kid must wait.
            assert await reason(v, token(rsa_key_2, "r2")) == "unknown_kid"
            clock.advance(20)
            assert (await v.verify(token(rsa_key_2, "r2"))).user_id == "alice"
            assert idp.calls == 2
            # The retired key verifies nothing new; identities already cached live to exp.
            assert await reason(v, token(rsa_key, "r1", "bob")) == "unknown_kid"
            assert v.verify_cached(old) is not None
            assert idp.calls == 2
        finally:
            await v.aclose()

    with_idp(body, jwks(jwk(rsa_key, "r1")), jwks(jwk(rsa_key_2, "r2")))


def test_stale_set_is_refreshed_without_blocking_known_kids(
    clock: FakeClock, rsa_key: AsymmetricKey, rsa_key_2: AsymmetricKey
) -> None:
    async def body(idp: Idp) -> None:
        v = make(clock)
        fetcher = v.jwks_fetcher(ISSUER)
        assert isinstance(fetcher, JwksFetcher)
        try:
            await v.start()
            clock.advance(300)
            assert (await v.verify(token(rsa_key, "r1", "bob"))).user_id == "bob"
            await fetcher.wait_idle()
            assert idp.calls == 2
            assert (await v.verify(token(rsa_key_2, "r2"))).user_id == "alice"
            assert idp.calls == 2
        finally:
            await v.aclose()

    with_idp(body, jwks(jwk(rsa_key, "r1")), jwks(jwk(rsa_key, "r1"), jwk(rsa_key_2, "r2")))


# IdP failures ---------------------------------------------------------------------------------


async def _hang(_request: httpx.Request) -> httpx.Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


FAILURES: list[tuple[str, Any]] = [
    ("status_500", httpx.Response(500, text="boom")),
    ("status_404", httpx.Response(404)),
    ("connect_error", httpx.ConnectError),
    ("connect_timeout", httpx.ConnectTimeout),
    ("read_timeout", httpx.ReadTimeout),
    ("hangs_past_timeout", _hang),
    ("not_json", httpx.Response(200, text="<html>maintenance</html>")),
    ("json_not_jwks", httpx.Response(200, json={"error": "nope"})),
    ("keys_not_list", httpx.Response(200, json={"keys": {"kty": "RSA"}})),
    ("empty_set", httpx.Response(200, json={"keys": []})),
    ("only_oct_keys", httpx.Response(200, json={"keys": [{"kty": "oct", "k": "AAAA"}]})),
    ("too_large", httpx.Response(200, content=b" " * (1 << 20) + b'{"keys": []}')),
]


@pytest.mark.parametrize("failure", [f for _, f in FAILURES], ids=[i for i, _ in FAILURES])
def test_idp_failure_keeps_the_last_good_set(
    clock: FakeClock,
    rsa_key: AsymmetricKey,
    failure: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body(idp: Idp) -> None:
        v = make(clock, jwks_timeout=0.05)
        fetcher = v.jwks_fetcher(ISSUER)
        assert fetcher is not None
        try:
            await v.start()
            clock.advance(301)  # Stale: the next verification triggers a refresh, which fails.
            assert (await v.verify(token(rsa_key, "r1", "u1"))).user_id == "u1"
            await fetcher.wait_idle()
            assert idp.calls == 2
            assert (await v.verify(token(rsa_key, "r1", "u2"))).user_id == "u2"
            clock.advance(30)
            assert (await v.verify(token(rsa_key, "r1", "u3"))).user_id == "u3"
            await fetcher.wait_idle()
            assert idp.calls == 3
        finally:
            await v.aclose()

    caplog.set_level(logging.WARNING, logger="gateway.jwt")
    with_idp(body, jwks(jwk(rsa_key, "r1")), failure)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert f"JWKS fetch from https://{HOST}{PATH} failed" in warnings[0].getMessage()
    assert "query-secret" not in caplog.text
    assert "maintenance" not in caplog.text


def test_a_cancelled_request_does_not_cancel_the_shared_fetch(
    clock: FakeClock, rsa_key: AsymmetricKey
) -> None:
    async def body(idp: Idp) -> None:
        v = make(clock)
        try:
            first = asyncio.create_task(v.verify(token(rsa_key, "r1", "u1")))
            second = asyncio.create_task(v.verify(token(rsa_key, "r1", "u2")))
            for _ in range(5):
                await asyncio.sleep(0)
            first.cancel()
            gate.set()
            assert (await second).user_id == "u2"
            assert first.cancelled()
            assert idp.calls == 1
        finally:
            await v.aclose()

    # Since Python 3.10 an Event binds to the running loop on first use, not on creation.
    gate = asyncio.Event()

    async def gated(_request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return jwks(jwk(rsa_key, "r1"))

    with_idp(body, gated)


def test_aclose_cancels_a_fetch_in_flight(clock: FakeClock) -> None:
    async def body(idp: Idp) -> None:
        v = make(clock, jwks_timeout=60)
        pending = asyncio.create_task(v.start())
        for _ in range(5):
            await asyncio.sleep(0)
        assert idp.calls == 1
        await asyncio.wait_for(v.aclose(), timeout=5)
        await asyncio.wait_for(asyncio.gather(pending, return_exceptions=True), timeout=5)

    with_idp(body, _hang)


def test_a_shared_client_is_used_but_not_closed(clock: FakeClock, rsa_key: AsymmetricKey) -> None:
    async def body(idp: Idp) -> None:
        async with httpx.AsyncClient() as client:
            settings = JWTSettings(issuers=(jwks_issuer(),))
            v = JWTVerifier(settings, http_client=client, clock=clock)
            await v.start()
            await v.aclose()
            assert not client.is_closed
            assert idp.requests[-1].headers["accept"] == "application/json"

    with_idp(body, jwks(jwk(rsa_key, "r1")))


# Which JWKS entries become keys ---------------------------------------------------------------


def test_algorithms_and_key_types(
    clock: FakeClock, rsa_key: AsymmetricKey, ec_key: AsymmetricKey, ed_key: AsymmetricKey
) -> None:
    async def body(_idp: Idp) -> None:
        v = make(clock, jwks_issuer(("RS256", "PS256", "ES256", "EdDSA")))
        try:
            for key, kid in ((ec_key, "e1"), (ed_key, "d1"), (rsa_key, "r1")):
                assert (await v.verify(token(key, kid))).user_id == "alice"
            ps = sign(claims(), rsa_key.private, "PS256", kid="p1")
            assert (await v.verify(ps)).user_id == "alice"
            # The same RSA material under r1 is bound to RS256: a PS256 token naming r1 fails.
            ps_r1 = sign(claims("bob"), rsa_key.private, "PS256", kid="r1")
            assert await reason(v, ps_r1) == "alg_mismatch"
        finally:
            await v.aclose()

    with_idp(
        body,
        jwks(
            jwk(ec_key, "e1", alg=None),  # No alg: ES256 is the only allowed EC algorithm.
            jwk(ed_key, "d1"),
            jwk(rsa_key, "r1"),
            jwk(rsa_key, "p1", alg="PS256"),
        ),
    )


def _rsa_jwk(size: int = 2048, **extra: Any) -> dict[str, Any]:
    # Sizes below 2048 are generated on purpose, to check that they are skipped.
    key = rsa.generate_private_key(public_exponent=65537, key_size=size).public_key()
    return {**RSAAlgorithm.to_jwk(key, as_dict=True), "kid": "x", **extra}


@pytest.fixture(scope="module")
def rsa_jwk() -> dict[str, Any]:
    return _rsa_jwk()


def _key_cases(rsa_jwk: dict[str, Any]) -> list[tuple[str, Any, tuple[str, ...], str | None]]:
    p384 = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True)
    private = RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048), as_dict=True)
    rs = ("RS256",)
    return [
        ("plain", rsa_jwk, rs, "RS256"),
        ("alg_given", {**rsa_jwk, "alg": "RS256"}, ("RS256", "PS256"), "RS256"),
        ("no_alg_one_compatible", rsa_jwk, ("RS256", "ES256"), "RS256"),
        ("no_alg_two_compatible", rsa_jwk, ("RS256", "PS256"), None),
        ("alg_not_allowed", {**rsa_jwk, "alg": "PS256"}, rs, None),
        ("alg_wrong_family", {**rsa_jwk, "alg": "ES256"}, ("RS256", "ES256"), None),
        ("alg_hmac", {**rsa_jwk, "alg": "HS256"}, rs, None),
        ("alg_none", {**rsa_jwk, "alg": "none"}, rs, None),
        ("use_enc", {**rsa_jwk, "use": "enc"}, rs, None),
        ("use_sig", {**rsa_jwk, "use": "sig"}, rs, "RS256"),
        ("key_ops_encrypt", {**rsa_jwk, "key_ops": ["encrypt"]}, rs, None),
        ("key_ops_verify", {**rsa_jwk, "key_ops": ["verify"]}, rs, "RS256"),
        ("oct", {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "x"},
         ("HS256",), None),
        ("private_rsa", {**private, "kid": "x"}, rs, None),
        ("rsa_1024", _rsa_jwk(1024), rs, None),
        ("ec_p384_for_es256", {**p384, "kid": "x"}, ("ES256",), None),
        ("ec_bad_point", {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, ("ES256",), None),
        ("kid_not_string", {**rsa_jwk, "kid": 7}, rs, None),
        ("unknown_kty", {**rsa_jwk, "kty": "RSA-X"}, rs, None),
        ("not_a_dict", ["kty", "RSA"], rs, None),
    ]  # fmt: skip


def test_which_jwks_entries_become_keys(rsa_jwk: dict[str, Any]) -> None:
    for case, entry, algorithms, expected in _key_cases(rsa_jwk):
        key = key_from_jwk(entry, algorithms)
        assert (key.alg if key else None) == expected, case


def test_parse_jwks_keeps_usable_entries_only(rsa_jwk: dict[str, Any]) -> None:
    entries = [rsa_jwk, {"kty": "oct", "k": "AAAA"}, 42, {**rsa_jwk, "kid": "y"}]
    keys = parse_jwks({"keys": entries}, ("RS256",))
    assert sorted(keys.by_kid) == ["x", "y"]
    documents: list[object] = [None, [], {"keys": "x"}, {"no": "keys"}]
    for document in documents:
        with pytest.raises(ValueError, match="not a JWK set"):
            parse_jwks(document, ("RS256",))
