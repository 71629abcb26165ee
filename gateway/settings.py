"""One validated settings object from a YAML file plus ``GATEWAY_*`` environment overrides.

Every problem is collected and reported together, each as
``SOURCE: option 'PATH' must be EXPECTED but it's configured as 'FOUND'`` (the policy loader's
wording), so an operator fixes a config in one round instead of one restart per typo.

Environment overrides: every scalar option has one variable, ``GATEWAY_`` + its dotted path in
upper case with ``.`` read as ``_`` (``upstream.url`` → ``GATEWAY_UPSTREAM_URL``). List options
take a comma-separated value. Secrets never come from the YAML file itself: keys name an
environment variable (``secret_env``) or a file (``secret_file``) that holds them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.identity.jwt_config import IssuerConfig, JwksConfig, JWTSettings, KeyConfig
from gateway.ops_settings import OpsSettings, assertion_ttl, build_ops, file_list
from gateway.otp.model import LANGUAGES
from gateway.otp.service import OtpSettings
from gateway.rewrite.headers import HeaderNames
from gateway.yamlio import read_yaml_file

HMAC_ALGS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGS = ("RS256", "PS256", "ES256", "EdDSA")
MODES = ("production", "dev")


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    url: str = "http://127.0.0.1:9000"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    body_timeout: float = 300.0
    max_idle: int = 256
    # Below the keep-alive timeout of common backends (uvicorn and Node.js close idle
    # connections after 5 s), so the gateway retires a connection before the backend does.
    idle_ttl: float = 4.0

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    @property
    def host_header(self) -> str:
        return urlsplit(self.url).netloc


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Who users are (directory) and how codes reach them (senders); secrets already read."""

    directory_kind: str = "none"
    directory_path: str | None = None
    directory_url: str | None = None
    directory_auth_header: str | None = None
    directory_auth_value: str | None = None
    directory_timeout: float = 3.0
    email_kind: str = "none"
    email_from: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    sms_kind: str = "none"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    webhook_url: str | None = None
    webhook_auth_header: str | None = None
    webhook_auth_value: str | None = None
    product: str = "Chat"


@dataclass(frozen=True, slots=True)
class Settings:
    mode: str = "production"
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    policies_dir: str = "policies"
    max_body_bytes: int = 1024 * 1024
    max_ws_message_bytes: int = 1024 * 1024
    header_names: HeaderNames = field(default_factory=HeaderNames)
    forward_authorization: bool = False
    forward_gateway_cookie: bool = False
    trusted_proxies: tuple[str, ...] = ()
    cookie_name: str = "__Host-gw_session"
    dev_cookie_name: str = "gw_session"
    jwt: JWTSettings = field(default_factory=JWTSettings)
    access_log: bool = True
    store_url: str = "memory://"
    store_prefix: str = "gw:"
    store_timeout: float = 0.5
    workers: int = 1
    idle_timeout: int = 30 * 60
    absolute_timeout: int = 24 * 60 * 60
    allowed_origins: tuple[str, ...] = ()
    otp: OtpSettings = field(default_factory=OtpSettings)
    otp_hash_key: bytes | None = None
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    # Admin listener, user ids in logs, identity assertion (gateway/ops_settings.py).
    ops: OpsSettings = field(default_factory=OpsSettings)

    @property
    def dev(self) -> bool:
        return self.mode == "dev"

    @property
    def gateway_cookie_names(self) -> tuple[str, str]:
        return (self.cookie_name, self.dev_cookie_name)

    @property
    def session_cookie_name(self) -> str:
        """``__Host-`` needs Secure, which plain-http dev mode cannot set."""
        return self.dev_cookie_name if self.dev else self.cookie_name


# ---------------------------------------------------------------------------------------------
# Scalar options: dotted path → (expected phrase, converter). A converter returns the value or
# raises ValueError; environment values arrive as strings and go through the same converter.


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    number = int(value)
    if number <= 0 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError
    return number


def _port(value: Any) -> int:
    number = _positive_int(value)
    if number > 65535:
        raise ValueError
    return number


def _positive_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError
    return number


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    number = int(value)
    if number < 0:
        raise ValueError
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value


def _choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError
        return str(value)

    return convert


def _http_url(value: Any) -> str:
    text = _text(value)
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError
    _ = parts.port  # raises ValueError on a bad port
    return text.rstrip("/")


def _header_name(value: Any) -> str:
    text = _text(value)
    if not all(ch.isalnum() or ch == "-" for ch in text):
        raise ValueError
    return text


def _cidrs(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError
    result = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError
        result.append(str(ipaddress.ip_network(item.strip(), strict=False)))
    return tuple(result)


def _origins(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError
    result = []
    for item in items:
        parts = urlsplit(str(item).strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ValueError
        result.append(f"{parts.scheme}://{parts.netloc}")
    return tuple(result)


def _store_url(value: Any) -> str:
    text = _text(value)
    if urlsplit(text).scheme not in ("memory", "redis", "rediss"):
        raise ValueError
    return text


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


_CONSOLE_NOTE = " (console only in dev mode)"

SCALARS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "mode": ("one of 'production', 'dev'", _choice(*MODES)),
    "listen.host": ("a host name or address", _text),
    "listen.port": ("a port number (1-65535)", _port),
    "upstream.url": ("an http:// URL with a host and no path", _http_url),
    "upstream.connect_timeout": ("a positive number of seconds", _positive_float),
    "upstream.read_timeout": ("a positive number of seconds", _positive_float),
    "upstream.body_timeout": ("a positive number of seconds", _positive_float),
    "upstream.max_idle": ("a positive integer", _positive_int),
    "upstream.idle_ttl": ("a positive number of seconds", _positive_float),
    "policies_dir": ("a directory path", _text),
    "limits.max_body_bytes": ("a positive integer (bytes)", _positive_int),
    "limits.max_ws_message_bytes": ("a positive integer (bytes)", _positive_int),
    "headers.user_id": ("a header name", _header_name),
    "headers.level": ("a header name", _header_name),
    "headers.email": ("a header name", _header_name),
    "headers.name": ("a header name", _header_name),
    "headers.anonymous_id": ("a header name", _header_name),
    "headers.forward_authorization": ("true or false", _bool),
    "headers.forward_gateway_cookie": ("true or false", _bool),
    "trusted_proxies": ("a list of IP addresses or CIDR networks", _cidrs),
    "session.cookie_name": ("a cookie name", _header_name),
    "session.dev_cookie_name": ("a cookie name", _header_name),
    "jwt.leeway": ("a non-negative integer (seconds)", _non_negative_int),
    "jwt.cache_size": ("a positive integer", _positive_int),
    "log.access": ("true or false", _bool),
    "log.user_id": ("one of 'hash', 'plain', 'none'", _choice("hash", "plain", "none")),
    "admin.enabled": ("true or false", _bool),
    "admin.host": ("a host name or address", _text),
    "admin.port": ("a port number (1-65535)", _port),
    "assertion.enabled": ("true or false", _bool),
    "assertion.audience": ("the backend's name, sent as 'aud'", _text),
    "assertion.issuer": ("a name, sent as 'iss'", _text),
    "assertion.ttl": ("a number of seconds from 1 to 60", assertion_ttl),
    "assertion.header": ("a header name", _header_name),
    "assertion.key_file": ("a readable file path", _text),
    "assertion.previous_key_files": ("a list of file paths", file_list),
    "store.url": ("a store URL: memory://, redis://… or rediss://…", _store_url),
    "store.prefix": ("a key prefix like 'gw:'", _text),
    "store.timeout": ("a positive number of seconds", _positive_float),
    "workers": ("a positive integer (worker processes)", _positive_int),
    "session.idle_timeout": ("a positive number of seconds", _positive_int),
    "session.absolute_timeout": ("a positive number of seconds", _positive_int),
    "session.allowed_origins": ("a list of origins like https://chat.example", _origins),
    "otp.code_ttl": ("a positive number of seconds", _positive_int),
    "otp.max_attempts": ("a positive integer", _positive_int),
    "otp.max_failures_per_hour": ("a positive integer", _positive_int),
    "otp.resend_cooldown": ("a non-negative integer (seconds)", _non_negative_int),
    "otp.max_sends_per_hour": ("a positive integer", _positive_int),
    "otp.ip_send_limit": ("a positive integer", _positive_int),
    "otp.ip_verify_limit": ("a positive integer", _positive_int),
    "otp.ip_window": ("a positive number of seconds", _positive_int),
    "otp.elevation_ttl": ("a positive number of seconds", _positive_int),
    "otp.reveal_unknown_users": ("true or false", _bool),
    "otp.default_language": ("one of " + ", ".join(f"'{x}'" for x in LANGUAGES),
                             _choice(*LANGUAGES)),
    "otp.product": ("a product name for messages", _text),
    "directory.kind": ("one of 'file', 'http', 'none'", _choice("file", "http", "none")),
    "directory.path": ("a YAML or CSV file path", _text),
    "directory.url": ("a URL template with {user_id}", _text),
    "directory.auth_header": ("a header name", _header_name),
    "directory.timeout": ("a positive number of seconds", _positive_float),
    "senders.email.kind": ("one of 'smtp', 'console', 'none'" + _CONSOLE_NOTE,
                           _choice("smtp", "console", "none")),
    "senders.email.from": ("an e-mail address", _text),
    "senders.email.host": ("a host name or address", _text),
    "senders.email.port": ("a port number (1-65535)", _port),
    "senders.email.username": ("a user name", _optional_text),
    "senders.email.starttls": ("true or false", _bool),
    "senders.email.use_tls": ("true or false", _bool),
    "senders.sms.kind": ("one of 'twilio', 'webhook', 'console', 'none'" + _CONSOLE_NOTE,
                         _choice("twilio", "webhook", "console", "none")),
    "senders.sms.account_sid": ("a Twilio account SID", _text),
    "senders.sms.from": ("an E.164 sender number", _text),
    "senders.sms.messaging_service_sid": ("a Twilio messaging service SID", _text),
    "senders.sms.url": ("an https:// URL", _text),
    "senders.sms.auth_header": ("a header name", _header_name),
}
# Secrets: each is read from ``<option>_env`` (a variable's name) or ``<option>_file``.
SECRETS = (
    "otp.hash_key",
    "directory.auth_value",
    "senders.email.password",
    "senders.sms.auth_token",
    "senders.sms.auth_value",
    "log.user_hash_salt",
)
for _secret_option in SECRETS:
    SCALARS[_secret_option + "_env"] = ("the name of an environment variable", _text)
    SCALARS[_secret_option + "_file"] = ("a readable file path", _text)
SECTIONS = {
    "listen", "upstream", "limits", "headers", "session", "jwt", "log", "store", "otp",
    "directory", "senders", "admin", "assertion",
}
ISSUER_KEYS = {
    "issuer",
    "audience",
    "subject_claim",
    "required_scope",
    "max_lifetime",
    "keys",
    "jwks",
}
KEY_KEYS = {"kid", "alg", "secret_env", "secret_file", "public_key_file"}


def env_name(path: str) -> str:
    return "GATEWAY_" + path.upper().replace(".", "_")


def _show(value: Any) -> str:
    if value is None:
        return "<missing>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(str(k) for k in value) + "}"
    return str(value)


class _Collector:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def bad(self, source: str, path: str, expected: str, found: Any) -> None:
        self.errors.append(
            f"{source}: option '{path}' must be {expected} but it's configured as '{_show(found)}'"
        )


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, Any] | None = None,
) -> Settings:
    """Read, merge and validate. Raises :class:`ConfigError` listing every problem."""
    env = os.environ if environ is None else environ
    errors = _Collector()
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
    jwt_settings = _jwt_settings(raw.get("jwt") or {}, source, values, env, errors)
    secrets = _secrets(values, env, source, errors)
    _check_delivery(values, secrets, source, errors)
    _check_store(values, source, errors)
    ops = build_ops(values, secrets, source, errors)
    if errors.errors:
        raise ConfigError(errors.errors)
    return replace(_build(values, jwt_settings, secrets), ops=ops)


def _read_yaml_scalars(
    raw: Mapping[str, Any], source: str, values: dict[str, Any], errors: _Collector,
    prefix: str = "",
) -> None:
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if dotted == "jwt.issuers":
            continue  # read by _jwt_settings
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


def _put(dotted: str, value: Any, source: str, values: dict[str, Any], errors: _Collector) -> None:
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
    env: Mapping[str, str], values: dict[str, Any], errors: _Collector, secret_envs: set[str]
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


def _jwt_settings(
    section: Any, source: str, values: dict[str, Any], env: Mapping[str, str], errors: _Collector
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
    item: Mapping[str, Any], where: str, source: str, env: Mapping[str, str], errors: _Collector
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
            lifetime = _positive_int(lifetime)
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
    raw: Any, where: str, source: str, env: Mapping[str, str], errors: _Collector
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
            pem = _read_file(item.get("public_key_file"), f"{at}.public_key_file", source, errors)
            if pem is not None and isinstance(kid, str):
                keys.append(KeyConfig(kid=kid, alg=str(alg), public_key_pem=pem))
        else:
            errors.bad(source, f"{at}.alg", "one of " + _quoted(HMAC_ALGS + ASYMMETRIC_ALGS), alg)
    return keys


def _secret(
    item: Mapping[str, Any], at: str, source: str, env: Mapping[str, str], errors: _Collector
) -> bytes | None:
    if "secret_env" in item:
        name = item["secret_env"]
        value = env.get(name) if isinstance(name, str) else None
        if not value:
            errors.bad(source, f"{at}.secret_env", "the name of a set environment variable", name)
            return None
        return value.encode("utf-8")
    if "secret_file" in item:
        return _read_file(item["secret_file"], f"{at}.secret_file", source, errors, strip=True)
    errors.bad(source, f"{at}.secret_env", "set (or 'secret_file') for an HMAC key", None)
    return None


def _read_file(
    path: Any, option: str, source: str, errors: _Collector, *, strip: bool = False
) -> bytes | None:
    if not isinstance(path, str) or not path:
        errors.bad(source, option, "a readable file path", path)
        return None
    try:
        data = Path(path).read_bytes()
    except OSError:
        errors.bad(source, option, "a readable file path", path)
        return None
    return data.strip() if strip else data


def _jwks(raw: Any, where: str, source: str, errors: _Collector) -> JwksConfig | None:
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
            "a list among " + _quoted(ASYMMETRIC_ALGS),
            algorithms,
        )
        return None
    if not isinstance(url, str):
        return None
    return JwksConfig(url=url, algorithms=tuple(algorithms))


def _secrets(
    values: Mapping[str, Any], env: Mapping[str, str], source: str, errors: _Collector
) -> dict[str, str]:
    """Read every configured secret from its environment variable or file."""
    found: dict[str, str] = {}
    for option in SECRETS:
        env_option, file_option = option + "_env", option + "_file"
        if env_option in values:
            value = env.get(values[env_option])
            if not value:
                errors.bad(source, env_option, "the name of a set environment variable",
                           values[env_option])
            else:
                found[option] = value
        elif file_option in values:
            data = _read_file(values[file_option], file_option, source, errors, strip=True)
            if data is not None:
                found[option] = data.decode("utf-8", "replace")
    return found


_REQUIRED_BY_KIND = {
    ("directory.kind", "file"): ("directory.path",),
    ("directory.kind", "http"): ("directory.url",),
    ("senders.email.kind", "smtp"): ("senders.email.from",),
    ("senders.sms.kind", "twilio"): ("senders.sms.account_sid", "senders.sms.auth_token"),
    ("senders.sms.kind", "webhook"): ("senders.sms.url",),
}


def _check_delivery(
    values: Mapping[str, Any], secrets: Mapping[str, str], source: str, errors: _Collector
) -> None:
    mode = values.get("mode", "production")
    for kind_option in ("senders.email.kind", "senders.sms.kind"):
        if values.get(kind_option) == "console" and mode != "dev":
            # The console sender prints codes: a development aid that must never run in front
            # of real users.
            errors.bad(source, kind_option, "'console' only in dev mode (mode: dev)", "console")
    for (kind_option, kind), required in _REQUIRED_BY_KIND.items():
        if values.get(kind_option) != kind:
            continue
        for option in required:
            if option not in values and option not in secrets:
                shown = option + ("_env" if option in SECRETS else "")
                errors.bad(source, shown, f"set when '{kind_option}' is '{kind}'", None)
    if values.get("senders.sms.kind") == "twilio" and not (
        "senders.sms.from" in values or "senders.sms.messaging_service_sid" in values
    ):
        errors.bad(source, "senders.sms.from",
                   "set (or 'messaging_service_sid') when 'senders.sms.kind' is 'twilio'", None)
    if "directory.url" in values and "{user_id}" not in values["directory.url"]:
        errors.bad(source, "directory.url", "a URL template with {user_id}",
                   values["directory.url"])


def _check_store(values: Mapping[str, Any], source: str, errors: _Collector) -> None:
    memory = urlsplit(values.get("store.url", "memory://")).scheme == "memory"
    workers = values.get("workers", 1)
    if memory and workers > 1:
        # Each worker is its own process with its own memory: a session created by one would be
        # unknown to the next, and the OTP attempt limit would hold per worker only.
        errors.errors.append(
            f"{source}: option 'workers' must be 1 with the memory store but it's configured "
            f"as '{workers}': the memory store keeps sessions inside one process; with "
            f"{workers} workers use store.url: redis://…"
        )
    otp_configured = values.get("directory.kind", "none") != "none"
    has_key = "otp.hash_key_env" in values or "otp.hash_key_file" in values
    if not memory and otp_configured and not has_key:
        # A per-process random key would make a code sent through one replica fail on another.
        errors.bad(source, "otp.hash_key_env",
                   "set (or 'otp.hash_key_file') when the store is Redis and one-time codes "
                   "are configured, so that every replica hashes codes with the same key", None)


def _quoted(items: tuple[str, ...]) -> str:
    return ", ".join(f"'{item}'" for item in items)


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
        workers=values.get("workers", defaults.workers),
        idle_timeout=values.get("session.idle_timeout", defaults.idle_timeout),
        absolute_timeout=values.get("session.absolute_timeout", defaults.absolute_timeout),
        allowed_origins=values.get("session.allowed_origins", ()),
        otp=otp,
        otp_hash_key=hash_key.encode("utf-8") if hash_key else None,
        delivery=_delivery(values, secrets),
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


def _delivery(values: Mapping[str, Any], secrets: Mapping[str, str]) -> DeliverySettings:
    d = DeliverySettings()
    return DeliverySettings(
        directory_kind=values.get("directory.kind", d.directory_kind),
        directory_path=values.get("directory.path"),
        directory_url=values.get("directory.url"),
        directory_auth_header=values.get("directory.auth_header"),
        directory_auth_value=secrets.get("directory.auth_value"),
        directory_timeout=values.get("directory.timeout", d.directory_timeout),
        email_kind=values.get("senders.email.kind", d.email_kind),
        email_from=values.get("senders.email.from"),
        smtp_host=values.get("senders.email.host", d.smtp_host),
        smtp_port=values.get("senders.email.port", d.smtp_port),
        smtp_username=values.get("senders.email.username"),
        smtp_password=secrets.get("senders.email.password"),
        smtp_starttls=values.get("senders.email.starttls", False),
        smtp_use_tls=values.get("senders.email.use_tls", False),
        sms_kind=values.get("senders.sms.kind", d.sms_kind),
        twilio_account_sid=values.get("senders.sms.account_sid"),
        twilio_auth_token=secrets.get("senders.sms.auth_token"),
        twilio_from=values.get("senders.sms.from"),
        twilio_messaging_service_sid=values.get("senders.sms.messaging_service_sid"),
        webhook_url=values.get("senders.sms.url"),
        webhook_auth_header=values.get("senders.sms.auth_header"),
        webhook_auth_value=secrets.get("senders.sms.auth_value"),
        product=values.get("otp.product", d.product),
    )
