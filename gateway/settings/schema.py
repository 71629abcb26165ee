"""Every option: its dotted path, the phrase a user reads when it is wrong, its converter.

A converter returns the value or raises ValueError; environment values arrive as strings and
go through the same converter as YAML values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.otp.model import LANGUAGES
from gateway.settings.model import MODES
from gateway.settings.ops import assertion_ttl, file_list


def positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    number = int(value)
    if number <= 0 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError
    return number


def port(value: Any) -> int:
    number = positive_int(value)
    if number > 65535:
        raise ValueError
    return number


def positive_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError
    return number


def non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    number = int(value)
    if number < 0:
        raise ValueError
    return number


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError


def nonempty_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value


def choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError
        return str(value)

    return convert


def http_url(value: Any) -> str:
    text = nonempty_text(value)
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError
    _ = parts.port  # raises ValueError on a bad port
    return text.rstrip("/")


def header_name(value: Any) -> str:
    text = nonempty_text(value)
    if not all(ch.isalnum() or ch == "-" for ch in text):
        raise ValueError
    return text


def cidrs(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError
    result = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError
        result.append(str(ipaddress.ip_network(item.strip(), strict=False)))
    return tuple(result)


def origins(value: Any) -> tuple[str, ...]:
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


def store_url(value: Any) -> str:
    text = nonempty_text(value)
    if urlsplit(text).scheme not in ("memory", "redis", "rediss"):
        raise ValueError
    return text


def optional_text(value: Any) -> str | None:
    return None if value is None else nonempty_text(value)


_CONSOLE_NOTE = " (console only in dev mode)"


SCALARS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "mode": ("one of 'production', 'dev'", choice(*MODES)),
    "listen.host": ("a host name or address", nonempty_text),
    "listen.port": ("a port number (1-65535)", port),
    "upstream.url": ("an http:// URL with a host and no path", http_url),
    "upstream.connect_timeout": ("a positive number of seconds", positive_float),
    "upstream.read_timeout": ("a positive number of seconds", positive_float),
    "upstream.body_timeout": ("a positive number of seconds", positive_float),
    "upstream.max_idle": ("a positive integer", positive_int),
    "upstream.idle_ttl": ("a positive number of seconds", positive_float),
    "policies_dir": ("a directory path", nonempty_text),
    "limits.max_body_bytes": ("a positive integer (bytes)", positive_int),
    "limits.max_ws_message_bytes": ("a positive integer (bytes)", positive_int),
    "headers.user_id": ("a header name", header_name),
    "headers.level": ("a header name", header_name),
    "headers.email": ("a header name", header_name),
    "headers.name": ("a header name", header_name),
    "headers.anonymous_id": ("a header name", header_name),
    "headers.forward_authorization": ("true or false", boolean),
    "headers.forward_gateway_cookie": ("true or false", boolean),
    "trusted_proxies": ("a list of IP addresses or CIDR networks", cidrs),
    "session.cookie_name": ("a cookie name", header_name),
    "session.dev_cookie_name": ("a cookie name", header_name),
    "jwt.leeway": ("a non-negative integer (seconds)", non_negative_int),
    "jwt.cache_size": ("a positive integer", positive_int),
    "log.access": ("true or false", boolean),
    "log.user_id": ("one of 'hash', 'plain', 'none'", choice("hash", "plain", "none")),
    "admin.enabled": ("true or false", boolean),
    "admin.host": ("a host name or address", nonempty_text),
    "admin.port": ("a port number (1-65535)", port),
    "assertion.enabled": ("true or false", boolean),
    "assertion.audience": ("the backend's name, sent as 'aud'", nonempty_text),
    "assertion.issuer": ("a name, sent as 'iss'", nonempty_text),
    "assertion.ttl": ("a number of seconds from 1 to 60", assertion_ttl),
    "assertion.header": ("a header name", header_name),
    "assertion.key_file": ("a readable file path", nonempty_text),
    "assertion.previous_key_files": ("a list of file paths", file_list),
    "store.url": ("a store URL: memory://, redis://… or rediss://…", store_url),
    "store.prefix": ("a key prefix like 'gw:'", nonempty_text),
    "store.timeout": ("a positive number of seconds", positive_float),
    "store.websocket_cache": ("true or false", boolean),
    "workers": ("a positive integer (worker processes)", positive_int),
    "session.idle_timeout": ("a positive number of seconds", positive_int),
    "session.absolute_timeout": ("a positive number of seconds", positive_int),
    "session.allowed_origins": ("a list of origins like https://chat.example", origins),
    "otp.code_ttl": ("a positive number of seconds", positive_int),
    "otp.max_attempts": ("a positive integer", positive_int),
    "otp.max_failures_per_hour": ("a positive integer", positive_int),
    "otp.resend_cooldown": ("a non-negative integer (seconds)", non_negative_int),
    "otp.max_sends_per_hour": ("a positive integer", positive_int),
    "otp.ip_send_limit": ("a positive integer", positive_int),
    "otp.ip_verify_limit": ("a positive integer", positive_int),
    "otp.ip_window": ("a positive number of seconds", positive_int),
    "otp.elevation_ttl": ("a positive number of seconds", positive_int),
    "otp.reveal_unknown_users": ("true or false", boolean),
    "otp.default_language": ("one of " + ", ".join(f"'{x}'" for x in LANGUAGES),
                             choice(*LANGUAGES)),
    "otp.product": ("a product name for messages", nonempty_text),
    "directory.kind": ("one of 'file', 'http', 'none'", choice("file", "http", "none")),
    "directory.path": ("a YAML or CSV file path", nonempty_text),
    "directory.url": ("a URL template with {user_id}", nonempty_text),
    "directory.auth_header": ("a header name", header_name),
    "directory.timeout": ("a positive number of seconds", positive_float),
    "senders.email.kind": ("one of 'smtp', 'console', 'none'" + _CONSOLE_NOTE,
                           choice("smtp", "console", "none")),
    "senders.email.from": ("an e-mail address", nonempty_text),
    "senders.email.host": ("a host name or address", nonempty_text),
    "senders.email.port": ("a port number (1-65535)", port),
    "senders.email.username": ("a user name", optional_text),
    "senders.email.starttls": ("true or false", boolean),
    "senders.email.use_tls": ("true or false", boolean),
    "senders.sms.kind": ("one of 'twilio', 'webhook', 'console', 'none'" + _CONSOLE_NOTE,
                         choice("twilio", "webhook", "console", "none")),
    "senders.sms.account_sid": ("a Twilio account SID", nonempty_text),
    "senders.sms.from": ("an E.164 sender number", nonempty_text),
    "senders.sms.messaging_service_sid": ("a Twilio messaging service SID", nonempty_text),
    "senders.sms.url": ("an https:// URL", nonempty_text),
    "senders.sms.auth_header": ("a header name", header_name),
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
    SCALARS[_secret_option + "_env"] = ("the name of an environment variable", nonempty_text)
    SCALARS[_secret_option + "_file"] = ("a readable file path", nonempty_text)


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


def show(value: Any) -> str:
    if value is None:
        return "<missing>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(str(k) for k in value) + "}"
    return str(value)


class Collector:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def bad(self, source: str, path: str, expected: str, found: Any) -> None:
        self.errors.append(
            f"{source}: option '{path}' must be {expected} but it's configured as '{show(found)}'"
        )


def read_file(
    path: Any, option: str, source: str, errors: Collector, *, strip: bool = False
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


def quoted(items: tuple[str, ...]) -> str:
    return ", ".join(f"'{item}'" for item in items)
