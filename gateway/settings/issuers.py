"""The ``jwt.issuers`` list: issuers, their keys (secrets read from env or files), JWKS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from gateway.identity.jwt_config import IssuerConfig, JwksConfig, JWTSettings, KeyConfig
from gateway.settings.model import ASYMMETRIC_ALGS, HMAC_ALGS
from gateway.settings.schema import (
    ISSUER_KEYS,
    KEY_KEYS,
    Collector,
    positive_int,
    quoted,
    read_file,
)


def read_issuers(
    section: Any, source: str, values: dict[str, Any], env: Mapping[str, str], errors: Collector
) -> JWTSettings:
    issuers_raw = section.get("issuers", []) if isinstance(section, dict) else []
    if not isinstance(issuers_raw, list):
        errors.bad(source, "jwt.issuers", "a list of issuers", issuers_raw)
        issuers_raw = []
    issuers = []
    seen: set[str] = set()
    for n, item in enumerate(issuers_raw, start=1):
        where = f"jwt.issuers[{n}]"
        if not isinstance(item, dict):
            errors.bad(source, where, "a mapping with 'issuer' and 'keys' or 'jwks'", item)
            continue
        issuer = _issuer(item, where, source, env, errors)
        if issuer is not None:
            if issuer.issuer in seen:
                errors.bad(source, f"{where}.issuer", "unique among issuers", issuer.issuer)
            seen.add(issuer.issuer)
            issuers.append(issuer)
    return JWTSettings(
        issuers=tuple(issuers),
        leeway=values.get("jwt.leeway", 120),
        cache_size=values.get("jwt.cache_size", 10_000),
    )


def _issuer(
    item: Mapping[str, Any], where: str, source: str, env: Mapping[str, str], errors: Collector
) -> IssuerConfig | None:
    before = len(errors.errors)
    for key in item:
        if key not in ISSUER_KEYS:
            errors.errors.append(f"{source}: option '{where}.{key}' is not a known option")
    name = item.get("issuer")
    if not isinstance(name, str) or not name:
        errors.bad(source, f"{where}.issuer", "the exact 'iss' value of the tokens", name)
    audience = item.get("audience")
    if audience is not None and (not isinstance(audience, str) or not audience):
        errors.bad(source, f"{where}.audience", "a non-empty string", audience)
    subject = item.get("subject_claim", "sub")
    if subject not in ("sub", "external_id"):
        errors.bad(source, f"{where}.subject_claim", "one of 'sub', 'external_id'", subject)
    scope = item.get("required_scope")
    if scope is not None and (not isinstance(scope, str) or not scope or " " in scope):
        errors.bad(source, f"{where}.required_scope", "one scope name", scope)
    lifetime = item.get("max_lifetime")
    if lifetime is not None:
        try:
            lifetime = positive_int(lifetime)
        except (ValueError, TypeError):
            errors.bad(source, f"{where}.max_lifetime", "a positive integer (seconds)", lifetime)
    keys = _keys(item.get("keys", []), where, source, env, errors)
    jwks = _jwks(item.get("jwks"), where, source, errors)
    if not keys and jwks is None:
        errors.bad(source, f"{where}.keys", "at least one key (or a 'jwks' section)", None)
    if len(errors.errors) != before:
        return None
    return IssuerConfig(
        issuer=str(name),
        keys=tuple(keys),
        jwks=jwks,
        audience=audience,
        subject_claim=str(subject),
        required_scope=scope,
        max_lifetime=lifetime,
    )


def _keys(
    raw: Any, where: str, source: str, env: Mapping[str, str], errors: Collector
) -> list[KeyConfig]:
    if not isinstance(raw, list):
        errors.bad(source, f"{where}.keys", "a list of keys", raw)
        return []
    keys: list[KeyConfig] = []
    kids: set[str] = set()
    for n, item in enumerate(raw, start=1):
        at = f"{where}.keys[{n}]"
        if not isinstance(item, dict):
            errors.bad(source, at, "a mapping with 'kid' and 'alg'", item)
            continue
        if "secret" in item:
            errors.errors.append(
                f"{source}: option '{at}.secret' is not allowed: secrets never live in the "
                f"config file; use 'secret_env' (an environment variable) or 'secret_file'"
            )
            continue
        for key in item:
            if key not in KEY_KEYS:
                errors.errors.append(f"{source}: option '{at}.{key}' is not a known option")
        kid, alg = item.get("kid"), item.get("alg")
        if not isinstance(kid, str) or not kid:
            errors.bad(source, f"{at}.kid", "a non-empty key id", kid)
        elif kid in kids:
            errors.bad(source, f"{at}.kid", "unique within the issuer", kid)
        kids.add(str(kid))
        if alg in HMAC_ALGS:
            secret = _secret(item, at, source, env, errors)
            if secret is not None and isinstance(kid, str):
                keys.append(KeyConfig(kid=kid, alg=str(alg), secret=secret))
        elif alg in ASYMMETRIC_ALGS:
            pem = read_file(item.get("public_key_file"), f"{at}.public_key_file", source, errors)
            if pem is not None and isinstance(kid, str):
                keys.append(KeyConfig(kid=kid, alg=str(alg), public_key_pem=pem))
        else:
            errors.bad(source, f"{at}.alg", "one of " + quoted(HMAC_ALGS + ASYMMETRIC_ALGS), alg)
    return keys


def _secret(
    item: Mapping[str, Any], at: str, source: str, env: Mapping[str, str], errors: Collector
) -> bytes | None:
    if "secret_env" in item:
        name = item["secret_env"]
        value = env.get(name) if isinstance(name, str) else None
        if not value:
            errors.bad(source, f"{at}.secret_env", "the name of a set environment variable", name)
            return None
        return value.encode("utf-8")
    if "secret_file" in item:
        return read_file(item["secret_file"], f"{at}.secret_file", source, errors, strip=True)
    errors.bad(source, f"{at}.secret_env", "set (or 'secret_file') for an HMAC key", None)
    return None


def _jwks(raw: Any, where: str, source: str, errors: Collector) -> JwksConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.bad(source, f"{where}.jwks", "a mapping with 'url' and 'algorithms'", raw)
        return None
    url = raw.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("https", "http"):
        errors.bad(source, f"{where}.jwks.url", "an https:// URL", url)
    algorithms = raw.get("algorithms")
    if (
        not isinstance(algorithms, list)
        or not algorithms
        or any(a not in ASYMMETRIC_ALGS for a in algorithms)
    ):
        errors.bad(
            source,
            f"{where}.jwks.algorithms",
            "a list among " + quoted(ASYMMETRIC_ALGS),
            algorithms,
        )
        return None
    if not isinstance(url, str):
        return None
    return JwksConfig(url=url, algorithms=tuple(algorithms))
