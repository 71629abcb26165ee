"""JWTVerifier with configured keys: construction, every claim rule, the cache, logging."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.errors import ConfigError, TokenExpired, TokenInvalid
from gateway.identity import jwk_keys as jwk_keys_module
from gateway.identity.jwt import JWTVerifier
from gateway.identity.jwt_config import IssuerConfig, JwksConfig, JWTSettings, KeyConfig
from gateway.identity.model import AUTHENTICATED, Identity

from ..security.jwt_cases import compact, hs_signer
from .conftest import ISSUER, NOW, AsymmetricKey, FakeClock, claims, hs_secret, run, sign

SECRET = b"s" * 16 + b"e" * 16  # 32 bytes: the HS256 minimum.


def settings(*issuers: IssuerConfig, **options: Any) -> JWTSettings:
    return JWTSettings(issuers=issuers, **options)


def hs_issuer(secret: bytes = SECRET, kid: str = "k1", **options: Any) -> IssuerConfig:
    return IssuerConfig(ISSUER, keys=(KeyConfig(kid, "HS256", secret=secret),), **options)


def verifier(clock: FakeClock, *issuers: IssuerConfig, **options: Any) -> JWTVerifier:
    return JWTVerifier(settings(*(issuers or (hs_issuer(),)), **options), clock=clock)


def rejected(v: JWTVerifier, token: str) -> str:
    """The reason ``token`` is refused (fails the test if it is accepted)."""
    with pytest.raises((TokenInvalid, TokenExpired)) as info:
        run(v.verify(token))
    return info.value.reason


# Construction ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "minimum"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_secret_shorter_than_digest_is_refused(alg: str, minimum: int) -> None:
    short = b"x" * (minimum - 1)
    with pytest.raises(ConfigError) as info:
        JWTVerifier(settings(IssuerConfig(ISSUER, keys=(KeyConfig("k1", alg, secret=short),))))
    assert info.value.errors == [
        f"jwt.issuers[0] ('{ISSUER}'): key 'k1': an {alg} secret must be at least "
        f"{minimum} bytes, but it's {minimum - 1} bytes"
    ]
    JWTVerifier(settings(IssuerConfig(ISSUER, keys=(KeyConfig("k1", alg, secret=b"x" * minimum),))))


@pytest.mark.parametrize("alg", ["none", "None", "RS384", "HS1024", "ES512", ""])
def test_unsupported_key_algorithm_is_refused(alg: str) -> None:
    with pytest.raises(ConfigError, match="option 'alg' must be one of"):
        JWTVerifier(settings(IssuerConfig(ISSUER, keys=(KeyConfig("k1", alg, secret=SECRET),))))


def test_public_key_as_hmac_secret_is_refused(rsa_key: AsymmetricKey) -> None:
    config = KeyConfig("k1", "HS256", secret=rsa_key.public_pem)
    with pytest.raises(ConfigError, match="looks like a public key or a JWK"):
        JWTVerifier(settings(IssuerConfig(ISSUER, keys=(config,))))


def _bad_asymmetric_configs(rsa_key: AsymmetricKey) -> list[tuple[KeyConfig, str]]:
    # Deliberately weak: the verifier must refuse it.
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    return [
        (KeyConfig("a", "RS256"), "needs a public key (PEM) and no secret"),
        (KeyConfig("b", "RS256", secret=SECRET, public_key_pem=rsa_key.public_pem), "no secret"),
        (KeyConfig("c", "RS256", public_key_pem=rsa_key.private_pem), "not a PEM-encoded public"),
        (KeyConfig("d", "RS256", public_key_pem=b"garbage"), "not a PEM-encoded public key"),
        (KeyConfig("e", "ES256", public_key_pem=rsa_key.public_pem), "not fit algorithm ES256"),
        (KeyConfig("f", "ES256", public_key_pem=p384.public_bytes(pem, spki)), "not fit"),
        (KeyConfig("g", "RS256", public_key_pem=small.public_bytes(pem, spki)), "1024 bits"),
        (KeyConfig("h", "HS256", public_key_pem=rsa_key.public_pem), "needs a secret"),
    ]


def test_every_bad_asymmetric_key_is_reported_at_once(rsa_key: AsymmetricKey) -> None:
    cases = _bad_asymmetric_configs(rsa_key)
    with pytest.raises(ConfigError) as info:
        JWTVerifier(settings(IssuerConfig(ISSUER, keys=tuple(config for config, _ in cases))))
    assert len(info.value.errors) == len(cases)
    for (config, expected), message in zip(cases, info.value.errors, strict=True):
        assert f"key {config.kid!r}: " in message
        assert expected in message


def test_structural_errors_are_all_reported() -> None:
    bad = settings(
        IssuerConfig(ISSUER, keys=(KeyConfig("k", "HS256", secret=SECRET),) * 2),
        IssuerConfig(ISSUER, keys=(KeyConfig("k", "HS256", secret=SECRET),)),
        IssuerConfig("https://empty.test"),
        IssuerConfig("https://jwks.test", jwks=JwksConfig("ftp://x", ("HS256",))),
        leeway=-1,
        jwks_timeout=0,
    )
    with pytest.raises(ConfigError) as info:
        JWTVerifier(bad)
    assert info.value.errors == [
        "jwt.leeway must be 0 or more, but it's configured as -1",
        "jwt.jwks_timeout must be more than 0, but it's configured as 0",
        f"jwt.issuers[0] ('{ISSUER}'): key id 'k' is configured more than once",
        f"jwt.issuers[1] ('{ISSUER}'): issuer is configured more than once",
        "jwt.issuers[2] ('https://empty.test'): needs 'keys' or 'jwks', but it has neither",
        "jwt.issuers[3] ('https://jwks.test'): option 'jwks.url' must be an http(s) URL",
        "jwt.issuers[3] ('https://jwks.test'): option 'jwks.algorithms' must be among "
        "RS256, PS256, ES256, EdDSA, but it's configured as 'HS256'",
    ]


def test_key_repr_and_config_errors_never_show_the_secret() -> None:
    secret = b"TOP-SECRET-" + b"x" * 10
    assert "TOP-SECRET" not in repr(KeyConfig("k1", "HS256", secret=secret))
    with pytest.raises(ConfigError) as info:
        JWTVerifier(settings(hs_issuer(secret=secret)))
    assert "TOP-SECRET" not in str(info.value)


# Keys and algorithms --------------------------------------------------------------------------


def test_ring_of_twelve_hmac_keys_verifies_old_and_new_kids(clock: FakeClock) -> None:
    ring = {f"2025-{month:02d}": hs_secret() for month in range(1, 13)}
    issuer = IssuerConfig(
        ISSUER, keys=tuple(KeyConfig(kid, "HS256", secret=key) for kid, key in ring.items())
    )
    v = verifier(clock, issuer)
    for kid, secret in ring.items():
        identity = run(v.verify(sign(claims(f"user-{kid}"), secret, kid=kid)))
        assert identity.user_id == f"user-{kid}"
    # A secret is only good for its own kid: a key id never selects "any key of the ring".
    assert rejected(v, sign(claims(), ring["2025-01"], kid="2025-02")) == "bad_signature"


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_longer_hmac_algorithms(clock: FakeClock, alg: str) -> None:
    secret = hs_secret(64)
    v = verifier(clock, IssuerConfig(ISSUER, keys=(KeyConfig("k1", alg, secret=secret),)))
    assert run(v.verify(sign(claims(), secret, alg))).user_id == "alice"


@pytest.mark.parametrize("fixture", ["rsa_key", "ec_key", "ed_key", "ps"])
def test_asymmetric_keys_from_pem(
    clock: FakeClock, request: pytest.FixtureRequest, fixture: str
) -> None:
    key: AsymmetricKey = request.getfixturevalue("rsa_key" if fixture == "ps" else fixture)
    alg = "PS256" if fixture == "ps" else key.alg
    v = verifier(
        clock, IssuerConfig(ISSUER, keys=(KeyConfig("k1", alg, public_key_pem=key.public_pem),))
    )
    assert run(v.verify(sign(claims(), key.private, alg))).user_id == "alice"
    assert rejected(v, sign(claims(), hs_secret(), "HS256")) == "alg_mismatch"


def test_public_keys_are_parsed_once_at_construction(
    clock: FakeClock, rsa_key: AsymmetricKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = KeyConfig("k1", "RS256", public_key_pem=rsa_key.public_pem)
    v = verifier(clock, IssuerConfig(ISSUER, keys=(config,)))

    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a key was parsed on the request path")

    monkeypatch.setattr(jwk_keys_module, "load_pem_public_key", boom)
    monkeypatch.setattr(pyjwt.algorithms, "load_pem_public_key", boom)
    for user in ("a", "b", "c"):
        assert run(v.verify(sign(claims(user), rsa_key.private, "RS256"))).user_id == user


def test_kids_are_scoped_to_their_issuer(clock: FakeClock) -> None:
    other = "https://other-idp.example.test"
    secret_a, secret_b = hs_secret(), hs_secret()
    v = verifier(
        clock,
        hs_issuer(secret_a),
        IssuerConfig(other, keys=(KeyConfig("k1", "HS256", secret=secret_b),)),
    )
    assert run(v.verify(sign(claims(), secret_a))).issuer == ISSUER
    assert run(v.verify(sign(claims(iss=other), secret_b))).issuer == other
    # Same kid, other issuer's secret: the key is chosen by (iss, kid), never kid alone.
    assert rejected(v, sign(claims(iss=other), secret_a)) == "bad_signature"


def test_token_without_kid(clock: FakeClock, rsa_key: AsymmetricKey) -> None:
    single = verifier(clock)
    assert run(single.verify(sign(claims(), SECRET, kid=None))).user_id == "alice"
    two_keys = IssuerConfig(
        ISSUER,
        keys=(
            KeyConfig("k1", "HS256", secret=SECRET),
            KeyConfig("k2", "RS256", public_key_pem=rsa_key.public_pem),
        ),
    )
    assert rejected(verifier(clock, two_keys), sign(claims(), SECRET, kid=None)) == "unknown_kid"


@pytest.mark.parametrize(
    "kid", ["k2", "K1", "k1 ", "k1\x00", "../../../../dev/null", "' OR '1'='1", ""]
)
def test_unknown_kid(clock: FakeClock, kid: str) -> None:
    assert rejected(verifier(clock), sign(claims(), SECRET, kid=kid)) == "unknown_kid"


def test_token_alg_must_equal_the_keys_one_algorithm(clock: FakeClock) -> None:
    v = verifier(clock)
    # Signed with the configured secret, but under another HMAC algorithm than the key's.
    for alg in ("HS384", "HS512"):
        token = compact({"alg": alg, "kid": "k1"}, claims(), hs_signer(SECRET, alg))
        assert rejected(v, token) == "alg_mismatch"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_casing(clock: FakeClock, alg: str) -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": alg, "kid": "k1"}).encode())
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode())
    unsigned = f"{header.decode().rstrip('=')}.{payload.decode().rstrip('=')}."
    assert rejected(verifier(clock), unsigned) == "malformed"
    assert rejected(verifier(clock), unsigned + "c2ln") == "alg_mismatch"


def test_crit_header_is_refused(clock: FakeClock) -> None:
    token = sign(claims(), SECRET, crit=["exp"], exp=1)
    assert rejected(verifier(clock), token) == "crit_unsupported"


def test_key_carrying_headers_are_ignored_not_fetched(clock: FakeClock) -> None:
    # A correctly signed token stays valid: the headers are simply never read.
    token = sign(
        claims(),
        SECRET,
        jku="http://127.0.0.1:9/jwks.json",
        x5u="http://127.0.0.1:9/cert.pem",
        x5c=["MIIB"],
        jwk={"kty": "oct", "k": "AAAA"},
    )
    assert run(verifier(clock).verify(token)).user_id == "alice"


# Shape ----------------------------------------------------------------------------------------


def test_size_limit_is_inclusive(clock: FakeClock) -> None:
    token = sign(claims(), SECRET)
    assert run(verifier(clock, max_token_bytes=len(token)).verify(token)).user_id == "alice"
    assert rejected(verifier(clock, max_token_bytes=len(token) - 1), token) == "malformed"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + "=",
        lambda t: t.rsplit(".", 1)[0] + ".",
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t + ".e30",
        lambda t: t + "\n",
        lambda t: t.replace("-", "+").replace("_", "/") + "+",
        lambda t: "." + t.split(".", 1)[1],
        lambda t: t.replace(".", ".\u0660", 1),
    ],
    ids=["padded", "empty-sig", "two-segments", "four-segments", "newline", "std-b64",
         "empty-header", "non-ascii-digit"],
)  # fmt: skip
def test_shape_precheck(clock: FakeClock, mangle: Any) -> None:
    assert rejected(verifier(clock), mangle(sign(claims(), SECRET))) == "malformed"


# Claims ---------------------------------------------------------------------------------------


def test_identity_fields(clock: FakeClock) -> None:
    payload = claims(email="a@example.test", email_verified=True, name="Alice Ünal", groups=[1])
    identity = run(verifier(clock).verify(sign(payload, SECRET)))
    assert identity == Identity(
        user_id="alice",
        level=AUTHENTICATED,
        expires_at=NOW + 300,
        email="a@example.test",
        name="Alice Ünal",
        issuer=ISSUER,
    )
    assert identity.claims == payload


@pytest.mark.parametrize(
    ("extra", "email", "name"),
    [
        ({"email": "a@x.test", "email_verified": "true"}, None, None),
        ({"email": "a@x.test", "email_verified": 1}, None, None),
        ({"email": "a@x.test"}, None, None),
        ({"email": ["a@x.test"], "email_verified": True}, None, None),
        ({"email": "a@x.test\r\nX-User-Id: admin", "email_verified": True}, None, None),
        ({"name": 42}, None, None),
        ({"name": "Mallory\r\nX-Auth-Level: otp"}, None, None),
        ({"name": ""}, None, None),
    ],
)
def test_email_only_when_verified_and_header_safe(
    clock: FakeClock, extra: dict[str, Any], email: str | None, name: str | None
) -> None:
    identity = run(verifier(clock).verify(sign(claims(**extra), SECRET)))
    assert (identity.email, identity.name) == (email, name)


def test_configured_subject_claim(clock: FakeClock) -> None:
    v = verifier(clock, hs_issuer(subject_claim="external_id"))
    token = sign(claims(sub="ignored", external_id="crm-4711"), SECRET)
    assert run(v.verify(token)).user_id == "crm-4711"
    assert rejected(v, sign(claims(), SECRET)) == "missing_claim"


@pytest.mark.parametrize(
    "sub",
    ["a" * 256, "", "alice smith", "alice\t", "alice\x7f", "alicé", 42, 4.2, True, ["alice"], {}],
)
def test_bad_subject(clock: FakeClock, sub: Any) -> None:
    assert rejected(verifier(clock), sign(claims(sub), SECRET)) == "bad_subject"


@pytest.mark.parametrize("sub", ["a" * 255, "!", "~", "user@example.test", "a|b:c/d"])
def test_good_subject(clock: FakeClock, sub: str) -> None:
    assert run(verifier(clock).verify(sign(claims(sub), SECRET))).user_id == sub


def test_missing_claims(clock: FakeClock) -> None:
    v = verifier(clock)
    payload = claims()
    for name in ("exp", "sub"):
        partial = {key: value for key, value in payload.items() if key != name}
        assert rejected(v, sign(partial, SECRET)) == "missing_claim"
    assert rejected(v, sign({**payload, "iss": None}, SECRET)) == "missing_claim"


@pytest.mark.parametrize(
    "iss",
    [ISSUER + "/", ISSUER.upper(), ISSUER[:-1], ISSUER + ".evil.test", " " + ISSUER, [ISSUER], 7],
)
def test_issuer_is_an_exact_match(clock: FakeClock, iss: Any) -> None:
    assert rejected(verifier(clock), sign({**claims(), "iss": iss}, SECRET)) == "unknown_issuer"


def test_expiry_with_leeway(clock: FakeClock) -> None:
    v = verifier(clock)
    assert run(v.verify(sign(claims(exp=int(NOW) - 119), SECRET))).user_id == "alice"
    with pytest.raises(TokenExpired) as info:
        run(v.verify(sign(claims(exp=int(NOW) - 120), SECRET)))
    assert info.value.reason == "expired"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid_with_leeway(clock: FakeClock, claim: str) -> None:
    v = verifier(clock)
    assert run(v.verify(sign(claims(**{claim: int(NOW) + 120}), SECRET))).user_id == "alice"
    assert rejected(v, sign(claims(**{claim: int(NOW) + 121}), SECRET)) == "immature"


def test_leeway_is_configurable(clock: FakeClock) -> None:
    v = verifier(clock, leeway=0)
    assert rejected(v, sign(claims(nbf=int(NOW) + 1), SECRET)) == "immature"
    assert rejected(v, sign(claims(exp=int(NOW)), SECRET)) == "expired"


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["1750000300", True, [1], {"t": 1}, 10**400])
def test_time_claims_must_be_numbers(clock: FakeClock, name: str, value: Any) -> None:
    token = sign({**claims(), name: value}, SECRET)
    assert rejected(verifier(clock), token) == "malformed"


def test_time_claims_may_be_fractional(clock: FakeClock) -> None:
    identity = run(verifier(clock).verify(sign(claims(exp=NOW + 0.5, nbf=NOW - 0.5), SECRET)))
    assert identity.expires_at == NOW + 0.5


def test_max_lifetime(clock: FakeClock) -> None:
    v = verifier(clock, hs_issuer(max_lifetime=420))
    assert run(v.verify(sign(claims(ttl=420), SECRET))).user_id == "alice"
    assert rejected(v, sign(claims(ttl=421), SECRET)) == "lifetime_too_long"
    assert rejected(v, sign(claims(iat=None), SECRET)) == "missing_claim"


@pytest.mark.parametrize(
    ("aud", "reason"),
    [
        ("chat", None),
        (["other", "chat"], None),
        ("chat2", "bad_audience"),
        ("cha", "bad_audience"),
        ("CHAT", "bad_audience"),
        (["other"], "bad_audience"),
        ([["chat"]], "bad_audience"),
        (None, "missing_claim"),
    ],
)
def test_audience(clock: FakeClock, aud: Any, reason: str | None) -> None:
    v = verifier(clock, hs_issuer(audience="chat"))
    token = sign(claims(aud=aud), SECRET)
    if reason is None:
        assert run(v.verify(token)).user_id == "alice"
    else:
        assert rejected(v, token) == reason


def test_audience_not_configured_accepts_any_aud(clock: FakeClock) -> None:
    assert run(verifier(clock).verify(sign(claims(aud="anything"), SECRET))).user_id == "alice"


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        ({"scope": "openid user"}, True),
        ({"scope": "user"}, True),
        ({"scp": ["profile", "user"]}, True),
        ({"scp": "profile user"}, True),
        ({"scope": "users superuser"}, False),
        ({"scope": ["user"]}, False),
        ({"scp": ["users"]}, False),
        ({}, False),
    ],
)
def test_required_scope(clock: FakeClock, extra: dict[str, Any], ok: bool) -> None:
    v = verifier(clock, hs_issuer(required_scope="user"))
    token = sign(claims(**extra), SECRET)
    if ok:
        assert run(v.verify(token)).user_id == "alice"
    else:
        assert rejected(v, token) == "missing_scope"


# Cache ----------------------------------------------------------------------------------------


def test_cache_hit_returns_the_same_identity(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = verifier(clock)
    token = sign(claims(), SECRET)
    assert v.verify_cached(token) is None
    identity = run(v.verify(token))

    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a cache hit must not decode again")

    monkeypatch.setattr(pyjwt, "decode", boom)
    assert v.verify_cached(token) is identity
    assert run(v.verify(token)) is identity


def test_cache_rechecks_expiry(clock: FakeClock) -> None:
    v = verifier(clock)
    token = sign(claims(ttl=60), SECRET)
    run(v.verify(token))
    clock.advance(60 + 119)
    assert v.verify_cached(token) is not None
    clock.advance(1)
    with pytest.raises(TokenExpired):
        v.verify_cached(token)
    # The stale entry is gone; the full path says the same thing.
    assert v.verify_cached(token) is None
    with pytest.raises(TokenExpired):
        run(v.verify(token))


def test_only_successes_are_cached(clock: FakeClock) -> None:
    v = verifier(clock)
    bad = sign(claims(), hs_secret())
    for _ in range(2):
        assert rejected(v, bad) == "bad_signature"
        assert v.verify_cached(bad) is None


def test_cache_is_bounded(clock: FakeClock) -> None:
    v = verifier(clock, cache_size=3)
    tokens = [sign(claims(f"user-{n}"), SECRET) for n in range(5)]
    for token in tokens:
        run(v.verify(token))
    assert [v.verify_cached(token) is not None for token in tokens] == [False, False] + [True] * 3


# Logging --------------------------------------------------------------------------------------


def test_rejections_log_reason_never_token_secret_or_claims(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.jwt")
    v = verifier(clock)
    tokens = [
        sign(claims("mallory-sub", email="m@evil.test"), hs_secret()),
        sign(claims("mallory-sub", exp=int(NOW) - 1000), SECRET),
        sign(claims("mallory-sub", iss="https://mallory-issuer.test"), SECRET),
    ]
    for token in tokens:
        rejected(v, token)
    text = caplog.text
    assert "bad_signature" in text and "expired" in text and "unknown_issuer" in text
    for secret_or_claim in ("mallory", "evil.test", SECRET.decode(), *tokens):
        assert secret_or_claim not in text
    assert all(record.name == "gateway.jwt" for record in caplog.records)
