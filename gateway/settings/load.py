"""Read the YAML file and the environment, validate, and build one Settings object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.identity.jwt_config import JWTSettings
from gateway.otp.service import OtpSettings
from gateway.rewrite.header_names import HeaderNames
from gateway.settings.delivery import build_delivery, check_delivery, check_store, read_secrets
from gateway.settings.issuers import read_issuers
from gateway.settings.model import Settings, UpstreamSettings
from gateway.settings.ops import build_ops
from gateway.settings.schema import SCALARS, SECRETS, SECTIONS, Collector, env_name
from gateway.yamlio import read_yaml_file


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, Any] | None = None,
) -> Settings:
    """Read, merge and validate. Raises :class:`ConfigError` listing every problem."""
    env = os.environ if environ is None else environ
    errors = Collector()
    raw: dict[str, Any] = dict(base or {})
    source = "<defaults>"
    config_path = path or env.get("GATEWAY_CONFIG")
    if config_path:
        source = str(config_path)
        loaded, yaml_errors = read_yaml_file(Path(config_path), source)
        if yaml_errors:
            raise ConfigError(yaml_errors)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"{source}: the file must hold a mapping of options"])
        raw.update(loaded)

    values: dict[str, Any] = {}
    _read_yaml_scalars(raw, source, values, errors)
    secret_envs = _secret_env_names(raw)
    _read_env(env, values, errors, secret_envs)
    jwt_settings = read_issuers(raw.get("jwt") or {}, source, values, env, errors)
    secrets = read_secrets(values, env, source, errors)
    check_delivery(values, secrets, source, errors)
    check_store(values, source, errors)
    ops = build_ops(values, secrets, source, errors)
    if errors.errors:
        raise ConfigError(errors.errors)
    return replace(_build(values, jwt_settings, secrets), ops=ops)


def _read_yaml_scalars(
    raw: Mapping[str, Any], source: str, values: dict[str, Any], errors: Collector,
    prefix: str = "",
) -> None:
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if dotted == "jwt.issuers":
            continue  # read by jwt_settings
        if dotted in SECTIONS or dotted in ("senders.email", "senders.sms"):
            if not isinstance(value, dict):
                errors.bad(source, dotted, "a mapping of options", value)
                continue
            _read_yaml_scalars(value, source, values, errors, prefix=dotted + ".")
        elif dotted in SECRETS:
            errors.errors.append(
                f"{source}: option '{dotted}' is not allowed: secrets never live in the config "
                f"file; use '{key}_env' (an environment variable) or '{key}_file'"
            )
        else:
            _put(dotted, value, source, values, errors)


def _put(dotted: str, value: Any, source: str, values: dict[str, Any], errors: Collector) -> None:
    spec = SCALARS.get(dotted)
    if spec is None:
        errors.errors.append(f"{source}: option '{dotted}' is not a known option")
        return
    expected, convert = spec
    try:
        values[dotted] = convert(value)
    except (ValueError, TypeError):
        errors.bad(source, dotted, expected, value)


def _secret_env_names(raw: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    jwt_section = raw.get("jwt")
    issuers = jwt_section.get("issuers") if isinstance(jwt_section, dict) else None
    for issuer in issuers if isinstance(issuers, list) else []:
        keys = issuer.get("keys") if isinstance(issuer, dict) else None
        for key in keys if isinstance(keys, list) else []:
            if isinstance(key, dict) and isinstance(key.get("secret_env"), str):
                names.add(key["secret_env"])
    return names | _delivery_env_names(raw)


def _delivery_env_names(raw: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for option in SECRETS:
        node: Any = raw
        for part in (option + "_env").split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str):
            names.add(node)
    return names


def _read_env(
    env: Mapping[str, str], values: dict[str, Any], errors: Collector, secret_envs: set[str]
) -> None:
    by_env = {env_name(path): path for path in SCALARS}
    for name, value in env.items():
        if not name.startswith("GATEWAY_") or name in secret_envs:
            continue
        if name == "GATEWAY_CONFIG" or name.startswith("GATEWAY_TEST_"):
            continue
        path = by_env.get(name)
        if path is None:
            errors.errors.append(
                f"environment: {name} is not a known setting (known: GATEWAY_CONFIG and "
                f"GATEWAY_ + an option path, e.g. GATEWAY_UPSTREAM_URL)"
            )
            continue
        _put(path, value, name, values, errors)


def _build(
    values: Mapping[str, Any], jwt_settings: JWTSettings, secrets: Mapping[str, str]
) -> Settings:
    defaults = Settings()
    up = UpstreamSettings()
    names = HeaderNames()
    otp_defaults = OtpSettings()
    otp = OtpSettings(**{
        name: values.get(f"otp.{name}", getattr(otp_defaults, name))
        for name in OtpSettings.__dataclass_fields__
    })
    hash_key = secrets.get("otp.hash_key")
    return Settings(
        store_url=values.get("store.url", defaults.store_url),
        store_prefix=values.get("store.prefix", defaults.store_prefix),
        store_timeout=values.get("store.timeout", defaults.store_timeout),
        store_websocket_cache=values.get("store.websocket_cache",
                                         defaults.store_websocket_cache),
        workers=values.get("workers", defaults.workers),
        idle_timeout=values.get("session.idle_timeout", defaults.idle_timeout),
        absolute_timeout=values.get("session.absolute_timeout", defaults.absolute_timeout),
        allowed_origins=values.get("session.allowed_origins", ()),
        otp=otp,
        otp_hash_key=hash_key.encode("utf-8") if hash_key else None,
        delivery=build_delivery(values, secrets),
        mode=values.get("mode", defaults.mode),
        listen_host=values.get("listen.host", defaults.listen_host),
        listen_port=values.get("listen.port", defaults.listen_port),
        upstream=UpstreamSettings(
            url=values.get("upstream.url", up.url),
            connect_timeout=values.get("upstream.connect_timeout", up.connect_timeout),
            read_timeout=values.get("upstream.read_timeout", up.read_timeout),
            body_timeout=values.get("upstream.body_timeout", up.body_timeout),
            max_idle=values.get("upstream.max_idle", up.max_idle),
            idle_ttl=values.get("upstream.idle_ttl", up.idle_ttl),
        ),
        policies_dir=values.get("policies_dir", defaults.policies_dir),
        max_body_bytes=values.get("limits.max_body_bytes", defaults.max_body_bytes),
        max_ws_message_bytes=values.get("limits.max_ws_message_bytes",
                                        defaults.max_ws_message_bytes),
        header_names=HeaderNames(
            user_id=values.get("headers.user_id", names.user_id),
            level=values.get("headers.level", names.level),
            email=values.get("headers.email", names.email),
            name=values.get("headers.name", names.name),
            anonymous_id=values.get("headers.anonymous_id", names.anonymous_id),
        ),
        forward_authorization=values.get("headers.forward_authorization", False),
        forward_gateway_cookie=values.get("headers.forward_gateway_cookie", False),
        trusted_proxies=values.get("trusted_proxies", ()),
        cookie_name=values.get("session.cookie_name", defaults.cookie_name),
        dev_cookie_name=values.get("session.dev_cookie_name", defaults.dev_cookie_name),
        jwt=jwt_settings,
        access_log=values.get("log.access", True),
    )
