"""How a code reaches a user: the ``Sender`` implementations.

``SmtpSender`` (e-mail), ``WebhookSmsSender`` and ``TwilioSmsSender`` (SMS), ``ConsoleSender``
(dev and demo only). Every failure is a ``SendError`` whose ``reason`` says what went wrong
(``smtp_auth_failed``, ``twilio_21211``…); third-party errors are translated in one place per
transport (``SmtpSender._deliver``, ``_HttpSender._post``). The code is never logged nor put in
an exception; a destination is only logged masked (``+49…``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx

from gateway.errors import ConfigError, SendError
from gateway.otp.directory import is_valid
from gateway.otp.model import CHANNELS, OutgoingCode
from gateway.otp.templates import render_code

log = logging.getLogger("gateway.senders")

_FMT = "{0}: option '{1}' must be {2} but it's configured as '{3}'"
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")


def mask(destination: str) -> str:
    """At most the first three characters of a phone number or address, for logs."""
    return destination[: min(3, len(destination) // 2)] + "…"


class _Problems(list[str]):
    """Configuration problems of one sender, all reported together."""

    def __init__(self, section: str) -> None:
        super().__init__()
        self.section = section

    def require(self, ok: bool, option: str, expected: str, found: object = "") -> None:
        if not ok:
            self.append(_FMT.format(self.section, option, expected, found))

    def raise_any(self) -> None:
        if self:
            raise ConfigError(self)


def _is_http_url(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https") and bool(urlsplit(url).hostname)


def _failed(reason: str, destination: str, detail: str = "") -> SendError:
    log.warning("one-time code to %s not sent: %s%s", mask(destination), reason, detail)
    return SendError(reason=reason)


class SmtpSender:
    """E-mail over SMTP: implicit TLS (``use_tls``, port 465), STARTTLS (``starttls``, 587) or
    plain (a local relay), with optional AUTH. smtplib blocks, so each message goes out from a
    worker thread on its own connection (codes are rare; a pool would only add state).
    Certificates are checked against ``tls_context`` or the system's trust store."""

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender_address: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_tls: bool = False,
        timeout: float = 10.0,
        product: str = "Chat",
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        problems = _Problems("smtp")
        envelope_from = parseaddr(sender_address)[1]
        ok = is_valid(envelope_from, "email") and not re.search(r"[\r\n]", sender_address)
        problems.require(ok, "sender_address", "an e-mail address", sender_address)
        problems.require(not (starttls and use_tls), "starttls", "false with 'use_tls'", "true")
        pair = (username is None) == (password is None)
        problems.require(pair, "username", "set together with 'password'", username or "")
        problems.raise_any()
        if username is not None and not (starttls or use_tls):
            log.warning("SMTP login without TLS: the password crosses the network in clear")
        self._host, self._port, self._product = host, port, product
        self._sender_address, self._envelope_from = sender_address, envelope_from
        self._username, self._password, self._starttls = username, password, starttls
        self._context = tls_context or ssl.create_default_context()
        self._smtp_class = smtplib.SMTP_SSL if use_tls else smtplib.SMTP
        self._smtp_options: dict[str, Any] = {"local_hostname": local_hostname, "timeout": timeout}
        if use_tls:
            self._smtp_options["context"] = self._context

    async def send(self, message: OutgoingCode) -> None:
        if message.channel != self.channel or not is_valid(message.destination, "email"):
            raise _failed("invalid_destination", message.destination)
        language, subject, text = render_code(message, self._product)
        mail = EmailMessage()
        mail["From"] = self._sender_address
        mail["To"] = message.destination
        mail["Subject"] = subject or ""
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid(domain=self._envelope_from.rpartition("@")[2])
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please.
        # Quoted-printable keeps the body 7-bit, so no relay on the way has to re-encode it.
        mail.set_content(text, charset="utf-8", cte="quoted-printable")
        mail["Content-Language"] = language  # After set_content, which drops Content-* headers.
        await asyncio.to_thread(self._deliver, mail, message.destination)
        log.info("one-time code sent by e-mail to %s", mask(message.destination))

    def _deliver(self, mail: EmailMessage, destination: str) -> None:
        """Runs in a worker thread; the one place where smtplib errors become SendError."""
        stage = "connect"
        try:
            with self._smtp_class(self._host, self._port, **self._smtp_options) as smtp:
                if self._starttls:
                    stage = "starttls"
                    smtp.starttls(context=self._context)
                if self._username is not None and self._password is not None:
                    stage = "auth"
                    smtp.login(self._username, self._password)
                stage = "send"
                smtp.send_message(mail, from_addr=self._envelope_from, to_addrs=[destination])
        except (smtplib.SMTPException, OSError) as error:
            code = getattr(error, "smtp_code", None)
            detail = f" (SMTP {code})" if isinstance(code, int) else ""
            raise _failed(_smtp_reason(stage, error), destination, detail) from None

    async def aclose(self) -> None:
        """Nothing to release: every message uses its own connection."""


# smtplib errors, most specific first (SMTPException derives from OSError); "{stage}" is the
# step that failed: connect, starttls, auth or send.
_SMTP_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (smtplib.SMTPAuthenticationError, "smtp_auth_failed"),
    (smtplib.SMTPNotSupportedError, "smtp_{stage}_unsupported"),
    (smtplib.SMTPRecipientsRefused, "smtp_recipient_refused"),
    (smtplib.SMTPSenderRefused, "smtp_sender_refused"),
    (TimeoutError, "smtp_timeout"),
    (ssl.SSLError, "smtp_tls_failed"),
    (smtplib.SMTPException, "smtp_{stage}_failed"),
    (OSError, "smtp_unreachable"),
)


def _smtp_reason(stage: str, error: BaseException) -> str:
    if isinstance(error.__context__, TimeoutError):  # A read timeout: SMTPServerDisconnected.
        error = error.__context__
    reason = next(reason for kind, reason in _SMTP_REASONS if isinstance(error, kind))
    return reason.format(stage=stage)


class _HttpSender:
    """An SMS sender speaking HTTP, on a shared ``httpx.AsyncClient`` or its own."""

    channel = "sms"
    name = "http"

    def __init__(self, client: httpx.AsyncClient | None, timeout: float, product: str) -> None:
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._timeout, self._product = timeout, product

    async def _post(self, url: str, message: OutgoingCode, **kwargs: Any) -> httpx.Response:
        """The one place where httpx errors become SendError."""
        if message.channel != self.channel:
            raise _failed("invalid_destination", message.destination)
        try:
            return await self._client.post(
                url, timeout=self._timeout, follow_redirects=False, **kwargs
            )
        except httpx.TimeoutException:
            raise _failed(f"{self.name}_timeout", message.destination) from None
        except httpx.HTTPError:
            raise _failed(f"{self.name}_unreachable", message.destination) from None

    async def aclose(self) -> None:
        """Close the HTTP client if this sender created it (a shared one is not ours)."""
        if self._owns_client:
            await self._client.aclose()


class WebhookSmsSender(_HttpSender):
    """SMS through an endpoint of your own: ``POST url`` with the JSON body
    ``{"to": "+49…", "text": "…", "language": "de"}``; any 2xx means accepted."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        auth_header: str | None = None,
        auth_value: str | None = None,
        timeout: float = 5.0,
        product: str = "Chat",
    ) -> None:
        problems = _Problems("sms_webhook")
        problems.require(_is_http_url(url), "url", "an http(s) URL", url)
        pair = bool(auth_header) == bool(auth_value)  # Never show auth_value: it is a secret.
        problems.require(pair, "auth_header", "set together with 'auth_value'", auth_header or "")
        problems.raise_any()
        super().__init__(client, timeout, product)
        self._url = url
        self._headers = {auth_header: auth_value} if auth_header and auth_value else {}

    async def send(self, message: OutgoingCode) -> None:
        language, _, text = render_code(message, self._product)
        body = {"to": message.destination, "text": text, "language": language}
        response = await self._post(self._url, message, json=body, headers=self._headers)
        if not response.is_success:
            raise _failed(f"webhook_http_{response.status_code}", message.destination)
        log.info("one-time code sent by SMS (webhook) to %s", mask(message.destination))


class TwilioSmsSender(_HttpSender):
    """SMS through Twilio's Messages API: ``POST {base_url}/2010-04-01/Accounts/{AccountSid}/
    Messages.json`` with HTTP Basic auth (AccountSid:AuthToken) and a form body with ``To``,
    ``Body`` and ``From`` or ``MessagingServiceSid``. Twilio answers 201 when it accepted the
    message; an error ``{"code": 21211, "message": …}`` becomes reason ``twilio_21211``."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        base_url: str = "https://api.twilio.com",
        product: str = "Chat",
    ) -> None:
        problems = _Problems("twilio")
        sid_ok = _ACCOUNT_SID.fullmatch(account_sid) is not None
        problems.require(sid_ok, "account_sid", "'AC' and 32 hex digits", account_sid)
        problems.require(bool(auth_token), "auth_token", "set")
        one = bool(from_number) != bool(messaging_service_sid)
        problems.require(one, "from_number", "set or 'messaging_service_sid'", from_number or "")
        problems.require(_is_http_url(base_url), "base_url", "an http(s) URL", base_url)
        problems.raise_any()
        super().__init__(client, timeout, product)
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        sender = {"From": from_number} if from_number else {}
        self._sender = sender or {"MessagingServiceSid": messaging_service_sid or ""}

    async def send(self, message: OutgoingCode) -> None:
        _, _, text = render_code(message, self._product)
        form = {"To": message.destination, "Body": text, **self._sender}
        response = await self._post(self._url, message, data=form, auth=self._auth)
        if response.is_success:
            log.info("one-time code sent by SMS (Twilio) to %s", mask(message.destination))
            return
        # Only Twilio's "code" is used: its "message" can quote the phone number.
        try:
            code = response.json().get("code")
        except (ValueError, AttributeError):
            code = None
        valid = isinstance(code, int) and not isinstance(code, bool)
        reason = f"twilio_{code}" if valid else f"twilio_http_{response.status_code}"
        raise _failed(reason, message.destination)


class ConsoleSender:
    """Prints ``[dev] one-time code for +49…: 123456`` instead of sending anything. For dev and
    demo mode only (showing the code is its whole purpose); the settings layer enforces that."""

    def __init__(self, channel: str, stream: TextIO | None = None) -> None:
        if channel not in CHANNELS:
            raise ConfigError([_FMT.format("console", "channel", "one of 'sms', 'email'", channel)])
        self.channel, self._stream = channel, stream

    async def send(self, message: OutgoingCode) -> None:
        stream = self._stream or sys.stderr  # Looked up now, so that redirections apply.
        print(f"[dev] one-time code for {mask(message.destination)}: {message.code}", file=stream)
        stream.flush()

    async def aclose(self) -> None:
        """Nothing to release."""
