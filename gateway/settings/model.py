"""The settings values: one frozen object the rest of the gateway reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateway.identity.jwt_config import JWTSettings
from gateway.otp.service import OtpSettings
from gateway.rewrite.header_names import HeaderNames
from gateway.settings.ops import OpsSettings

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
    # WebSocket re-checks read a local copy of the session that Redis invalidates
    # (gateway.stores.resp_tracked); False: one GET per message.
    store_websocket_cache: bool = True
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
