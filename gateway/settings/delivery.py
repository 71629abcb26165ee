"""Secrets, the directory and senders, and the store: checks that span several options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from gateway.settings.model import DeliverySettings
from gateway.settings.schema import SECRETS, Collector, read_file


def read_secrets(
    values: Mapping[str, Any], env: Mapping[str, str], source: str, errors: Collector
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
            data = read_file(values[file_option], file_option, source, errors, strip=True)
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


def check_delivery(
    values: Mapping[str, Any], secrets: Mapping[str, str], source: str, errors: Collector
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


def check_store(values: Mapping[str, Any], source: str, errors: Collector) -> None:
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


def build_delivery(values: Mapping[str, Any], secrets: Mapping[str, str]) -> DeliverySettings:
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
