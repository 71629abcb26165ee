"""A catalogue of JWT attacks, replayable against the verifier or end to end through the proxy.

Every token is built here by hand (base64url, JSON, HMAC/RSA from ``cryptography``), never with
the library under test, so a PyJWT regression cannot hide inside the tests that should catch it.

Use::

    keys = make_attack_keys()
    settings = jwt_settings_for(keys)          # or configure the gateway the same way
    ok = valid_token(keys)                     # the control: must be accepted
    for attack_id, make in ATTACKS:
        token = make(keys, "http://127.0.0.1:PORT")   # jku/x5u point there; expect ZERO hits
        ...  # must be refused: EXPECTED_REASONS[attack_id], error expected_error(attack_id)
    # VERIFIER_ONLY_ATTACKS: the same, but for JWTVerifier.verify only (see there why).

Tokens are timed against the real clock when the factory runs, so build them just before use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from gateway.identity.jwt_config import IssuerConfig, JWTSettings, KeyConfig

Factory = Callable[["AttackKeys", str], str]
# Passing OMIT as a claim value removes that claim from the token.
OMIT: Any = object()


@dataclass(frozen=True)
class AttackKeys:
    """What the gateway under test is configured with."""

    issuer: str
    audience: str
    hs_kid: str
    hs_secret: bytes
    rs_kid: str
    rs_private_pem: bytes
    rs_public_pem: bytes


def make_attack_keys() -> AttackKeys:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return AttackKeys(
        issuer="https://idp.attack.test/tenant",
        audience="chatbot-gateway",
        hs_kid="hs-2025-01",
        # ASCII, so that end-to-end tests can hand it to the gateway in an environment variable.
        hs_secret=secrets.token_urlsafe(48).encode(),
        rs_kid="rs-2025-01",
        rs_private_pem=private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        rs_public_pem=private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def jwt_settings_for(keys: AttackKeys) -> JWTSettings:
    """The verifier configuration the attacks are meant against (leeway 120 s, 8 KiB cap)."""
    return JWTSettings(
        issuers=(
            IssuerConfig(
                issuer=keys.issuer,
                audience=keys.audience,
                keys=(
                    KeyConfig(kid=keys.hs_kid, alg="HS256", secret=keys.hs_secret),
                    KeyConfig(kid=keys.rs_kid, alg="RS256", public_key_pem=keys.rs_public_pem),
                ),
            ),
        )
    )


# Building blocks ------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: dict[str, Any] | list[Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64url(raw)


def hs_signer(secret: bytes, alg: str = "HS256") -> Callable[[bytes], bytes]:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return lambda data: hmac.new(secret, data, digest).digest()


@cache
def _private_key(private_pem: bytes) -> rsa.RSAPrivateKey:
    # Loading (and so validating) an RSA private key costs tens of milliseconds: do it once.
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def rs_signer(private_pem: bytes, alg: str = "RS256") -> Callable[[bytes], bytes]:
    key = _private_key(private_pem)
    if alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return lambda data: key.sign(data, pss, hashes.SHA256())
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def compact(
    header: dict[str, Any] | list[Any] | bytes,
    payload: dict[str, Any] | list[Any] | bytes,
    sign: Callable[[bytes], bytes] | None,
) -> str:
    """A compact JWS; ``sign=None`` leaves the signature segment empty."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    signature = b64url(sign(signing_input.encode())) if sign else ""
    return f"{signing_input}.{signature}"


def claims_for(keys: AttackKeys, sub: Any = "alice", **claims: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": keys.issuer,
        "aud": keys.audience,
        "sub": sub,
        "iat": now,
        "exp": now + 300,
    }
    payload.update(claims)
    return {name: value for name, value in payload.items() if value is not OMIT}


def valid_token(keys: AttackKeys, sub: str = "alice", **claims: Any) -> str:
    """An HS256 token that MUST be accepted (the control)."""
    header = {"alg": "HS256", "typ": "JWT", "kid": keys.hs_kid}
    return compact(header, claims_for(keys, sub, **claims), hs_signer(keys.hs_secret))


def valid_rs_token(keys: AttackKeys, sub: str = "alice", **claims: Any) -> str:
    """An RS256 token that MUST be accepted (the control for the asymmetric key)."""
    header = {"alg": "RS256", "typ": "JWT", "kid": keys.rs_kid}
    return compact(header, claims_for(keys, sub, **claims), rs_signer(keys.rs_private_pem))


def _hs(keys: AttackKeys, header: dict[str, Any] | None = None, **claims: Any) -> str:
    """A token signed with the REAL HS secret: only the claims or header make it wrong."""
    full = {"alg": "HS256", "typ": "JWT", "kid": keys.hs_kid, **(header or {})}
    return compact(full, claims_for(keys, **claims), hs_signer(keys.hs_secret))


def _raw_payload(keys: AttackKeys, members: str) -> bytes:
    # Hand-written JSON for what json.dumps will not write (duplicates, NaN, Infinity).
    return (
        f'{{"iss":{json.dumps(keys.issuer)},"aud":{json.dumps(keys.audience)},'
        f'"iat":{int(time.time())},{members}}}'
    ).encode()


def _hs_raw(keys: AttackKeys, members: str) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": keys.hs_kid}
    return compact(header, _raw_payload(keys, members), hs_signer(keys.hs_secret))


@cache
def attacker_private_pem() -> bytes:
    """The attacker's own RSA key (generated once per process)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _attacker_public() -> rsa.RSAPublicKey:
    return _private_key(attacker_private_pem()).public_key()


def attacker_jwk(kid: str = "attacker") -> dict[str, Any]:
    numbers = _attacker_public().public_numbers()

    def _int(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
            "n": _int(numbers.n), "e": _int(numbers.e)}  # fmt: skip


@cache
def attacker_cert_der() -> bytes:
    key = _private_key(attacker_private_pem())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.attack.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _attacker_rs(keys: AttackKeys, header: dict[str, Any], **claims: Any) -> str:
    """Signed with the attacker's key; the header tries to make the gateway trust that key."""
    full = {"alg": "RS256", "typ": "JWT", **header}
    return compact(full, claims_for(keys, **claims), rs_signer(attacker_private_pem()))


def _rs_public_encodings(keys: AttackKeys) -> dict[str, bytes]:
    public = serialization.load_pem_public_key(keys.rs_public_pem)
    assert isinstance(public, rsa.RSAPublicKey)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    numbers = public.public_numbers()
    jwk = {
        "kty": "RSA",
        "kid": keys.rs_kid,
        "n": b64url(numbers.n.to_bytes(256, "big")),
        "e": b64url(numbers.e.to_bytes(3, "big")),
    }
    return {
        "pem": keys.rs_public_pem,
        "pem_no_newline": keys.rs_public_pem.rstrip(b"\n"),
        "pkcs1_pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        ),
        "der": der,
        "der_b64": base64.b64encode(der),
        "jwk_json": json.dumps(jwk).encode(),
    }


def _confusion(encoding: str, alg: str = "HS256", kid: str | None = "rs") -> Factory:
    """RS->HS key confusion: the RS public key, in some encoding, used as an HMAC secret."""

    def make(keys: AttackKeys, _jku: str) -> str:
        header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if kid is not None:
            header["kid"] = keys.rs_kid if kid == "rs" else keys.hs_kid
        secret = _rs_public_encodings(keys)[encoding]
        return compact(header, claims_for(keys), hs_signer(secret, alg))

    return make


def _alg_none(alg: str, signed: bool) -> Factory:
    def make(keys: AttackKeys, _jku: str) -> str:
        header = {"alg": alg, "typ": "JWT", "kid": keys.hs_kid}
        return compact(header, claims_for(keys), hs_signer(keys.hs_secret) if signed else None)

    return make


def _with_signature(signature: str) -> Factory:
    return lambda k, _: valid_token(k).rsplit(".", 1)[0] + "." + signature


def _tampered(keys: AttackKeys, _jku: str) -> str:
    header, _, signature = valid_token(keys).split(".")
    return f"{header}.{_segment(claims_for(keys, sub='admin'))}.{signature}"


def _truncated_signature(keys: AttackKeys, _jku: str) -> str:
    # Re-encoded rather than cut as text, so the segment stays canonical base64url.
    signing_input, signature = valid_token(keys).rsplit(".", 1)
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    return f"{signing_input}.{b64url(raw[:16])}"


def _deep_header(_keys: AttackKeys, _jku: str) -> str:
    nested = b'{"alg":"HS256","x":' + b"[" * 2000 + b"]" * 2000 + b"}"
    return f"{b64url(nested)}.{_segment({'sub': 'alice'})}.{b64url(b'sig')}"


# The catalogue ------------------------------------------------------------------------------

_NONE_CASINGS = ("none", "None", "NONE", "nOnE")

ATTACKS: list[tuple[str, Factory]] = [
    *[(f"alg_{alg}_unsigned", _alg_none(alg, signed=False)) for alg in _NONE_CASINGS],
    *[(f"alg_{alg}_signed", _alg_none(alg, signed=True)) for alg in _NONE_CASINGS],
    ("alg_unsupported_hs1024", lambda k, _: _hs(k, {"alg": "HS1024"})),
    ("alg_hs512_with_real_secret", lambda k, _: compact(
        {"alg": "HS512", "kid": k.hs_kid}, claims_for(k), hs_signer(k.hs_secret, "HS512"))),
    ("alg_ps256_with_real_rs_key", lambda k, _: compact(
        {"alg": "PS256", "kid": k.rs_kid}, claims_for(k), rs_signer(k.rs_private_pem, "PS256"))),
    ("alg_rs256_naming_hs_kid", lambda k, _: compact(
        {"alg": "RS256", "kid": k.hs_kid}, claims_for(k), rs_signer(k.rs_private_pem))),
    ("sig_stripped", _with_signature("")),
    ("sig_two_segments", lambda k, _: valid_token(k).rsplit(".", 1)[0]),
    ("sig_zero_bytes", _with_signature(b64url(bytes(32)))),
    ("sig_literal_null", _with_signature("null")),
    ("sig_truncated", _truncated_signature),
    ("sig_padded_hs", lambda k, _: valid_token(k) + "="),
    ("sig_padded_rs", lambda k, _: valid_rs_token(k) + "=="),
    ("payload_tampered", _tampered),
    ("confusion_hs256_pem", _confusion("pem")),
    ("confusion_hs256_pem_no_newline", _confusion("pem_no_newline")),
    ("confusion_hs256_pkcs1_pem", _confusion("pkcs1_pem")),
    ("confusion_hs256_der", _confusion("der")),
    ("confusion_hs256_der_b64", _confusion("der_b64")),
    ("confusion_hs256_jwk_json", _confusion("jwk_json")),
    ("confusion_hs512_pem", _confusion("pem", alg="HS512")),
    ("confusion_hs256_pem_no_kid", _confusion("pem", kid=None)),
    ("confusion_hs256_pem_hs_kid", _confusion("pem", kid="hs")),
    ("header_jwk_attacker_kid", lambda k, _: _attacker_rs(
        k, {"kid": "attacker", "jwk": attacker_jwk()})),
    ("header_jwk_real_kid", lambda k, _: _attacker_rs(
        k, {"kid": k.rs_kid, "jwk": attacker_jwk(k.rs_kid)})),
    ("header_jwk_no_kid", lambda k, _: _attacker_rs(k, {"jwk": attacker_jwk()})),
    ("header_jwk_oct_real_kid", lambda k, _: compact(
        {"alg": "HS256", "kid": k.hs_kid, "jwk": {"kty": "oct", "k": b64url(b"a" * 32)}},
        claims_for(k), hs_signer(b"a" * 32))),
    ("header_jku_attacker_kid", lambda k, url: _attacker_rs(
        k, {"kid": "attacker", "jku": f"{url}/jwks.json"})),
    ("header_jku_real_kid", lambda k, url: _attacker_rs(
        k, {"kid": k.rs_kid, "jku": f"{url}/jwks.json"})),
    ("header_x5u_real_kid", lambda k, url: _attacker_rs(
        k, {"kid": k.rs_kid, "x5u": f"{url}/cert.pem"})),
    ("header_x5u_no_kid", lambda k, url: _attacker_rs(k, {"x5u": f"{url}/cert.pem"})),
    ("header_x5c_real_kid", lambda k, _: _attacker_rs(
        k, {"kid": k.rs_kid, "x5c": [base64.b64encode(attacker_cert_der()).decode()]})),
    ("header_x5c_no_kid", lambda k, _: _attacker_rs(
        k, {"x5c": [base64.b64encode(attacker_cert_der()).decode()]})),
    ("kid_path_traversal", lambda k, _: compact(
        {"alg": "HS256", "kid": "../../../../dev/null"}, claims_for(k), hs_signer(b""))),
    ("kid_dev_null", lambda k, _: compact(
        {"alg": "HS256", "kid": "/dev/null"}, claims_for(k), hs_signer(b""))),
    ("kid_sql_injection", lambda k, _: compact(
        {"alg": "HS256", "kid": "x' UNION SELECT 'attacker-secret' -- "},
        claims_for(k), hs_signer(b"attacker-secret"))),
    ("kid_nul", lambda k, _: _hs(k, {"kid": k.hs_kid + "\x00"})),
    ("kid_crlf", lambda k, _: _hs(k, {"kid": k.hs_kid + "\r\nX-Injected: 1"})),
    ("kid_other_case", lambda k, _: _hs(k, {"kid": k.hs_kid.upper()})),
    ("kid_not_a_string", lambda k, _: _hs(k, {"kid": [k.hs_kid]})),
    ("kid_unknown", lambda k, _: compact(
        {"alg": "HS256", "kid": "kid-nobody-configured"}, claims_for(k),
        hs_signer(secrets.token_bytes(32)))),
    ("hs_wrong_secret", lambda k, _: compact(
        {"alg": "HS256", "kid": k.hs_kid}, claims_for(k), hs_signer(secrets.token_bytes(32)))),
    ("rs_wrong_key", lambda k, _: _attacker_rs(k, {"kid": k.rs_kid})),
    ("expired", lambda k, _: _hs(k, iat=int(time.time()) - 3900, exp=int(time.time()) - 3600)),
    ("expired_beyond_leeway", lambda k, _: _hs(k, exp=int(time.time()) - 200)),
    ("nbf_future", lambda k, _: _hs(k, nbf=int(time.time()) + 3600)),
    ("iat_future", lambda k, _: _hs(k, iat=int(time.time()) + 3600)),
    ("exp_missing", lambda k, _: _hs(k, exp=OMIT)),
    ("exp_string", lambda k, _: _hs(k, exp=str(int(time.time()) + 300))),
    ("exp_bool", lambda k, _: _hs(k, exp=True)),
    ("exp_nan", lambda k, _: _hs_raw(k, '"sub":"alice","exp":NaN')),
    ("exp_infinity", lambda k, _: _hs_raw(k, '"sub":"alice","exp":Infinity')),
    ("nbf_nan", lambda k, _: _hs_raw(k, f'"sub":"alice","exp":{int(time.time()) + 300},"nbf":NaN')),
    ("iss_missing", lambda k, _: _hs(k, iss=OMIT)),
    ("iss_prefix", lambda k, _: _hs(k, iss=k.issuer.rsplit("/", 1)[0])),
    ("iss_suffix", lambda k, _: _hs(k, iss=k.issuer + ".evil.test")),
    ("iss_other_case", lambda k, _: _hs(k, iss=k.issuer.upper())),
    ("iss_trailing_slash", lambda k, _: _hs(k, iss=k.issuer + "/")),
    ("iss_trailing_space", lambda k, _: _hs(k, iss=k.issuer + " ")),
    ("iss_list", lambda k, _: _hs(k, iss=[k.issuer])),
    ("aud_wrong", lambda k, _: _hs(k, aud="another-app")),
    ("aud_prefix", lambda k, _: _hs(k, aud=k.audience[:-1])),
    ("aud_suffix", lambda k, _: _hs(k, aud=k.audience + "-admin")),
    ("aud_other_case", lambda k, _: _hs(k, aud=k.audience.upper())),
    ("aud_list_without_ours", lambda k, _: _hs(k, aud=["another-app", "third-app"])),
    ("aud_nested_list", lambda k, _: _hs(k, aud=[[k.audience]])),
    ("aud_missing", lambda k, _: _hs(k, aud=OMIT)),
    ("sub_oversize", lambda k, _: _hs(k, sub="a" * 256)),
    ("sub_space", lambda k, _: _hs(k, sub="alice admin")),
    ("sub_control_char", lambda k, _: _hs(k, sub="alice\x07")),
    ("sub_crlf_header_injection", lambda k, _: _hs(k, sub="alice\r\nX-User-Id: admin")),
    ("sub_non_ascii", lambda k, _: _hs(k, sub="alicé")),
    ("sub_empty", lambda k, _: _hs(k, sub="")),
    ("sub_integer", lambda k, _: _hs(k, sub=42)),
    ("sub_list", lambda k, _: _hs(k, sub=["alice"])),
    ("sub_missing", lambda k, _: _hs(k, sub=OMIT)),
    ("sub_duplicate_member", lambda k, _: _hs_raw(
        k, f'"sub":"alice","sub":"admin","exp":{int(time.time()) + 300}')),
    ("crit_unknown", lambda k, _: _hs(k, {"crit": ["urn:x:must-understand"],
                                          "urn:x:must-understand": True})),
    ("crit_b64_understood_by_pyjwt", lambda k, _: _hs(k, {"crit": ["b64"], "b64": True})),
    ("crit_empty", lambda k, _: _hs(k, {"crit": []})),
    ("oversize_token", lambda k, _: valid_token(k, pad="x" * 9000)),
    ("garbage_dots", lambda _k, _: ".."),
    ("garbage_not_base64", lambda _k, _: "!!!.@@@.###"),
    ("garbage_std_base64_alphabet", lambda k, _: valid_token(k) + "+/"),
    ("garbage_four_segments", lambda k, _: valid_token(k) + ".AAAA"),
    ("garbage_jwe_five_segments", lambda k, _: ".".join([b64url(b'{"alg":"dir"}')] + ["AAAA"] * 4)),
    ("garbage_header_not_json", lambda k, _: compact(
        b"not json", claims_for(k), hs_signer(k.hs_secret))),
    ("garbage_header_array", lambda k, _: compact(
        ["HS256"], claims_for(k), hs_signer(k.hs_secret))),
    ("garbage_header_without_alg", lambda k, _: compact(
        {"typ": "JWT", "kid": k.hs_kid}, claims_for(k), hs_signer(k.hs_secret))),
    ("garbage_header_alg_not_string", lambda k, _: _hs(k, {"alg": ["HS256"]})),
    ("garbage_header_deep_nesting", _deep_header),
    ("garbage_payload_array", lambda k, _: compact(
        {"alg": "HS256", "kid": k.hs_kid}, [claims_for(k)], hs_signer(k.hs_secret))),
    ("garbage_payload_not_utf8", lambda k, _: compact(
        {"alg": "HS256", "kid": k.hs_kid}, b"\xff\xfe\x00garbage", hs_signer(k.hs_secret))),
]  # fmt: skip

# Tokens the verifier must refuse but that cannot travel in an Authorization header as they
# are: HTTP strips whitespace around a field value (RFC 9110 §5.5) and "Bearer" may be followed
# by several spaces, so through the proxy the first two arrive as the valid token (accepted,
# correctly), and clients refuse to send a CR/LF at all. Replay these against the verifier only.
VERIFIER_ONLY_ATTACKS: list[tuple[str, Factory]] = [
    ("garbage_empty", lambda _k, _: ""),
    ("garbage_leading_space", lambda k, _: " " + valid_token(k)),
    ("garbage_trailing_newline", lambda k, _: valid_token(k) + "\n"),
]

# Why the verifier refuses each attack (TokenInvalid/TokenExpired ``reason``). Over HTTP every
# one is a 401: ``token_expired`` for "expired", ``token_invalid`` for everything else.
EXPECTED_REASONS: dict[str, str] = {
    **{f"alg_{alg}_unsigned": "malformed" for alg in _NONE_CASINGS},
    **{f"alg_{alg}_signed": "alg_mismatch" for alg in _NONE_CASINGS},
    "alg_unsupported_hs1024": "alg_mismatch",
    "alg_hs512_with_real_secret": "alg_mismatch",
    "alg_ps256_with_real_rs_key": "alg_mismatch",
    "alg_rs256_naming_hs_kid": "alg_mismatch",
    "sig_stripped": "malformed",
    "sig_two_segments": "malformed",
    "sig_zero_bytes": "bad_signature",
    "sig_literal_null": "bad_signature",
    "sig_truncated": "bad_signature",
    "sig_padded_hs": "malformed",
    "sig_padded_rs": "malformed",
    "payload_tampered": "bad_signature",
    **{attack_id: "alg_mismatch" for attack_id, _ in ATTACKS if attack_id.startswith("confusion")},
    "confusion_hs256_pem_no_kid": "unknown_kid",
    "confusion_hs256_pem_hs_kid": "bad_signature",
    "header_jwk_attacker_kid": "unknown_kid",
    "header_jwk_real_kid": "bad_signature",
    "header_jwk_no_kid": "unknown_kid",
    "header_jwk_oct_real_kid": "bad_signature",
    "header_jku_attacker_kid": "unknown_kid",
    "header_jku_real_kid": "bad_signature",
    "header_x5u_real_kid": "bad_signature",
    "header_x5u_no_kid": "unknown_kid",
    "header_x5c_real_kid": "bad_signature",
    "header_x5c_no_kid": "unknown_kid",
    "kid_path_traversal": "unknown_kid",
    "kid_dev_null": "unknown_kid",
    "kid_sql_injection": "unknown_kid",
    "kid_nul": "unknown_kid",
    "kid_crlf": "unknown_kid",
    "kid_other_case": "unknown_kid",
    "kid_not_a_string": "malformed",
    "kid_unknown": "unknown_kid",
    "hs_wrong_secret": "bad_signature",
    "rs_wrong_key": "bad_signature",
    "expired": "expired",
    "expired_beyond_leeway": "expired",
    "nbf_future": "immature",
    "iat_future": "immature",
    "exp_missing": "missing_claim",
    "exp_string": "malformed",
    "exp_bool": "malformed",
    "exp_nan": "malformed",
    "exp_infinity": "malformed",
    "nbf_nan": "malformed",
    "iss_missing": "missing_claim",
    **{f"iss_{case}": "unknown_issuer" for case in (
        "prefix", "suffix", "other_case", "trailing_slash", "trailing_space", "list")},
    **{f"aud_{case}": "bad_audience" for case in (
        "wrong", "prefix", "suffix", "other_case", "list_without_ours", "nested_list")},
    "aud_missing": "missing_claim",
    **{f"sub_{case}": "bad_subject" for case in (
        "oversize", "space", "control_char", "crlf_header_injection", "non_ascii", "empty",
        "integer", "list")},
    "sub_missing": "missing_claim",
    "sub_duplicate_member": "malformed",
    "crit_unknown": "crit_unsupported",
    "crit_b64_understood_by_pyjwt": "crit_unsupported",
    "crit_empty": "crit_unsupported",
    "oversize_token": "malformed",
    **{
        attack_id: "malformed"
        for attack_id, _ in ATTACKS + VERIFIER_ONLY_ATTACKS
        if attack_id.startswith("garbage")
    },
}  # fmt: skip


def expected_error(attack_id: str) -> str:
    """The ``error`` code a 401 for this attack carries over HTTP (CONTRACT §5)."""
    return "token_expired" if EXPECTED_REASONS[attack_id] == "expired" else "token_invalid"
