"""Senders: SMTP against a real aiosmtpd server; Twilio and the SMS webhook through respx."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from gateway.errors import ConfigError, SendError
from gateway.otp.model import OutgoingCode, Sender
from gateway.otp.senders import (
    ConsoleSender,
    SmtpSender,
    TwilioSmsSender,
    WebhookSmsSender,
    mask,
)
from tests.otp.smtp_fixtures import (
    HOST,
    free_port,
    password_authenticator,
    self_signed,
    smtp_server,
)

CODE = "482913"
EMAIL = "alice@example.com"
PHONE = "+4915112345678"
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token"
TWILIO_URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
HOOK_URL = "https://sms.example/send"


def email_code(language: str = "en") -> OutgoingCode:
    return OutgoingCode("email", EMAIL, CODE, language, 300)


def sms_code(language: str = "en") -> OutgoingCode:
    return OutgoingCode("sms", PHONE, CODE, language, 300)


def send(sender: Any, message: OutgoingCode) -> None:
    """Send with ``sender`` in a fresh event loop and always close it."""

    async def go() -> None:
        try:
            await sender.send(message)
        finally:
            await sender.aclose()

    asyncio.run(go())


def send_error(sender: Any, message: OutgoingCode) -> SendError:
    with pytest.raises(SendError) as caught:
        send(sender, message)
    assert CODE not in str(caught.value) and CODE not in repr(caught.value.__dict__)
    error = caught.value
    # Nothing of the third-party exception (which may quote the destination) is chained.
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return error


def smtp(port: int, **options: Any) -> SmtpSender:
    options.setdefault("sender_address", "Chat <no-reply@chat.example>")
    options.setdefault("timeout", 5.0)
    return SmtpSender(HOST, port, local_hostname="client.test", **options)


# --- SMTP ---------------------------------------------------------------------------------


def test_smtp_delivers_a_message_in_the_users_language() -> None:
    with smtp_server() as (controller, collector):
        send(smtp(controller.port, product="Acme"), email_code("de"))
    [received] = collector.received
    assert received.mail_from == "no-reply@chat.example"
    assert received.rcpt_tos == [EMAIL]
    message = received.message
    assert message["To"] == EMAIL
    assert message["From"] == "Chat <no-reply@chat.example>"
    assert message["Subject"] == "Ihr Bestätigungscode für Acme"
    assert message["Date"] and message["Message-ID"].endswith("@chat.example>")
    assert message["Content-Language"] == "de"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    body = message.get_content().replace("\r\n", "\n")
    assert f"    {CODE}\n" in body
    assert "Er ist 5 Minuten gültig." in body
    assert "Falls Sie ihn nicht angefordert haben, ignorieren Sie diese Nachricht." in body
    assert CODE not in message["Subject"]


def test_smtp_falls_back_to_english_for_an_unknown_language() -> None:
    with smtp_server() as (controller, collector):
        send(smtp(controller.port), email_code("it"))
    assert collector.received[0].message["Subject"] == "Your Chat verification code"


def test_smtp_auth_with_the_right_password() -> None:
    auth = password_authenticator("bot", "s3cret")
    with smtp_server(authenticator=auth, auth_require_tls=False) as (controller, collector):
        send(smtp(controller.port, username="bot", password="s3cret"), email_code())
    assert collector.received[0].authenticated


def test_smtp_auth_with_a_wrong_password_is_a_send_error() -> None:
    auth = password_authenticator("bot", "s3cret")
    with smtp_server(authenticator=auth, auth_require_tls=False) as (controller, collector):
        error = send_error(smtp(controller.port, username="bot", password="wrong"), email_code())
    assert error.reason == "smtp_auth_failed"
    assert collector.received == []


def test_smtp_auth_not_offered_is_a_send_error() -> None:
    with smtp_server() as (controller, _):
        error = send_error(smtp(controller.port, username="bot", password="x"), email_code())
    assert error.reason == "smtp_auth_unsupported"


def test_smtp_starttls_with_a_trusted_self_signed_certificate(tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    auth = password_authenticator("bot", "s3cret")
    server = {"tls_context": cert.server_context, "require_starttls": True, "authenticator": auth}
    with smtp_server(**server) as (controller, collector):
        sender = smtp(
            controller.port,
            starttls=True,
            tls_context=cert.client_context,
            username="bot",
            password="s3cret",
        )
        send(sender, email_code("fr"))
    [received] = collector.received
    assert received.tls and received.authenticated
    assert received.message["Subject"] == "Votre code de vérification Chat"
    assert CODE in received.message.get_content()


def test_smtp_starttls_with_an_untrusted_certificate_is_a_send_error(tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    with smtp_server(tls_context=cert.server_context) as (controller, collector):
        error = send_error(smtp(controller.port, starttls=True), email_code())
    assert error.reason == "smtp_tls_failed"
    assert collector.received == []


def test_smtp_starttls_not_offered_is_a_send_error() -> None:
    with smtp_server() as (controller, _):
        error = send_error(smtp(controller.port, starttls=True), email_code())
    assert error.reason == "smtp_starttls_unsupported"


def test_smtp_implicit_tls(tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    with smtp_server(ssl_context=cert.server_context) as (controller, collector):
        send(smtp(controller.port, use_tls=True, tls_context=cert.client_context), email_code())
    assert collector.received[0].tls


def test_smtp_server_down_is_a_send_error() -> None:
    error = send_error(smtp(free_port()), email_code())
    assert error.reason == "smtp_unreachable"


def test_smtp_silent_server_is_a_timeout() -> None:
    # Accepts the connection (kernel backlog) but never greets.
    with socket.create_server((HOST, 0)) as silent:
        port = silent.getsockname()[1]
        error = send_error(smtp(port, timeout=0.3), email_code())
    assert error.reason == "smtp_timeout"


def test_smtp_refuses_a_destination_that_is_not_a_plain_address() -> None:
    message = OutgoingCode("email", "alice@example.com\r\nBcc: eve@example.com", CODE, "en", 300)
    assert send_error(smtp(free_port()), message).reason == "invalid_destination"


def test_smtp_never_logs_the_code_or_the_destination(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    auth = password_authenticator("bot", "s3cret")
    with smtp_server(authenticator=auth, auth_require_tls=False) as (controller, _):
        send(smtp(controller.port), email_code())
        send_error(smtp(controller.port, username="bot", password="wrong"), email_code())
    send_error(smtp(free_port()), email_code())
    assert caplog.records, "the sender logs what it does"
    assert "ali…" in caplog.text
    for record in caplog.records:
        text = record.getMessage()
        assert CODE not in text and EMAIL not in text and "s3cret" not in text


def test_smtp_configuration_errors_are_listed_together() -> None:
    with pytest.raises(ConfigError) as caught:
        SmtpSender(
            "mail.example",
            587,
            sender_address="Chat <no-reply@example.com>\r\nBcc: eve@example.com",
            starttls=True,
            use_tls=True,
            username="bot",
        )
    assert caught.value.errors == [
        "smtp: option 'sender_address' must be an e-mail address but it's configured as "
        "'Chat <no-reply@example.com>\r\nBcc: eve@example.com'",
        "smtp: option 'starttls' must be false with 'use_tls' but it's configured as 'true'",
        "smtp: option 'username' must be set together with 'password' but it's configured as 'bot'",
    ]


# --- Twilio -------------------------------------------------------------------------------


def twilio(**options: Any) -> TwilioSmsSender:
    if "messaging_service_sid" not in options:
        options.setdefault("from_number", "+15005550006")
    return TwilioSmsSender(SID, TOKEN, **options)


def test_twilio_request_shape_with_from() -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.post(TWILIO_URL).mock(
            return_value=httpx.Response(201, json={"sid": "SM1", "status": "queued"})
        )
        send(twilio(), sms_code("es"))
    request = route.calls.last.request
    assert str(request.url) == TWILIO_URL
    expected_auth = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected_auth}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode(), strict_parsing=True) == {
        "To": [PHONE],
        "From": ["+15005550006"],
        "Body": [f"Tu código de Chat: {CODE}. Caduca en 5 minutos. No lo compartas."],
    }


def test_twilio_request_shape_with_a_messaging_service() -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.post(TWILIO_URL).mock(return_value=httpx.Response(201, json={}))
        send(twilio(messaging_service_sid="MG" + "0" * 32), sms_code())
    form = parse_qs(route.calls.last.request.content.decode())
    assert form["MessagingServiceSid"] == ["MG" + "0" * 32] and "From" not in form
    assert form["Body"] == [f"Your Chat code: {CODE}. Valid for 5 minutes. Never share it."]


def test_twilio_base_url_is_configurable() -> None:
    url = f"http://twilio-mock.test:8080/2010-04-01/Accounts/{SID}/Messages.json"
    with respx.mock(assert_all_called=True) as router:
        router.post(url).mock(return_value=httpx.Response(201, json={}))
        send(twilio(base_url="http://twilio-mock.test:8080/"), sms_code())


def test_twilio_error_code_becomes_the_reason() -> None:
    body = {
        "code": 21211,
        "message": f"The 'To' number {PHONE} is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    with respx.mock(assert_all_called=True) as router:
        router.post(TWILIO_URL).mock(return_value=httpx.Response(400, json=body))
        assert send_error(twilio(), sms_code()).reason == "twilio_21211"


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (httpx.Response(401, json={"code": 20003, "message": "Authenticate"}), "twilio_20003"),
        (httpx.Response(503, text="<html>busy</html>"), "twilio_http_503"),
        (httpx.Response(500, json=["odd"]), "twilio_http_500"),
    ],
)
def test_twilio_other_failures(response: httpx.Response, reason: str) -> None:
    with respx.mock(assert_all_called=True) as router:
        router.post(TWILIO_URL).mock(return_value=response)
        assert send_error(twilio(), sms_code()).reason == reason


@pytest.mark.parametrize(
    ("exception", "reason"),
    [
        (httpx.ReadTimeout("read timed out"), "twilio_timeout"),
        (httpx.ConnectTimeout("connect timed out"), "twilio_timeout"),
        (httpx.ConnectError("connection refused"), "twilio_unreachable"),
    ],
)
def test_twilio_transport_failures(exception: Exception, reason: str) -> None:
    with respx.mock(assert_all_called=True) as router:
        router.post(TWILIO_URL).mock(side_effect=exception)
        assert send_error(twilio(), sms_code()).reason == reason


def test_twilio_logs_neither_code_nor_number_nor_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    body = {"code": 21211, "message": f"The 'To' number {PHONE} is not valid."}
    with respx.mock() as router:
        router.post(TWILIO_URL).mock(
            side_effect=[httpx.Response(201, json={}), httpx.Response(400, json=body)]
        )
        send(twilio(), sms_code())
        send_error(twilio(), sms_code())
    assert "+49…" in caplog.text
    for text in (record.getMessage() for record in caplog.records):
        assert CODE not in text and PHONE not in text and TOKEN not in text


def test_twilio_configuration_errors_are_listed_together() -> None:
    with pytest.raises(ConfigError) as caught:
        TwilioSmsSender("not-a-sid", "", from_number="+1500", messaging_service_sid="MG1")
    assert caught.value.errors == [
        "twilio: option 'account_sid' must be 'AC' and 32 hex digits "
        "but it's configured as 'not-a-sid'",
        "twilio: option 'auth_token' must be set but it's configured as ''",
        "twilio: option 'from_number' must be set or 'messaging_service_sid' "
        "but it's configured as '+1500'",
    ]


# --- Webhook ------------------------------------------------------------------------------


def test_webhook_request_shape() -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.post(HOOK_URL).mock(return_value=httpx.Response(202))
        send(
            WebhookSmsSender(HOOK_URL, auth_header="X-Api-Key", auth_value="hook-secret"),
            sms_code("de"),
        )
    request = route.calls.last.request
    assert request.headers["X-Api-Key"] == "hook-secret"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "to": PHONE,
        "text": f"Ihr Chat-Code: {CODE}. Gültig für 5 Minuten. Geben Sie ihn niemals weiter.",
        "language": "de",
    }


def test_webhook_non_2xx_and_timeouts_are_send_errors() -> None:
    with respx.mock(assert_all_called=True) as router:
        router.post(HOOK_URL).mock(
            side_effect=[httpx.Response(500), httpx.Response(302), httpx.ReadTimeout("slow")]
        )
        reasons = [send_error(WebhookSmsSender(HOOK_URL), sms_code()).reason for _ in range(3)]
    assert reasons == ["webhook_http_500", "webhook_http_302", "webhook_timeout"]


def test_webhook_configuration_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        WebhookSmsSender("ftp://sms.example", auth_value="hook-secret")
    assert caught.value.errors == [
        "sms_webhook: option 'url' must be an http(s) URL but it's configured as 'ftp://sms.example'",
        "sms_webhook: option 'auth_header' must be set together with 'auth_value' "
        "but it's configured as ''",
    ]
    assert "hook-secret" not in str(caught.value)


def test_a_shared_client_is_used_and_left_open() -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            sender = WebhookSmsSender(HOOK_URL, client=client)
            await sender.send(sms_code())
            await sender.aclose()
            assert not client.is_closed
            await client.get("https://sms.example/ping")

    with respx.mock(assert_all_called=True) as router:
        router.post(HOOK_URL).mock(return_value=httpx.Response(200))
        router.get("https://sms.example/ping").mock(return_value=httpx.Response(204))
        asyncio.run(go())


def test_an_sms_sender_refuses_an_email_message() -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.post(HOOK_URL)
        assert send_error(WebhookSmsSender(HOOK_URL), email_code()).reason == "invalid_destination"
    assert not route.called


# --- Console and the contract -------------------------------------------------------------


def test_console_sender_prints_the_code_with_a_masked_destination() -> None:
    stream = io.StringIO()
    send(ConsoleSender("sms", stream=stream), sms_code())
    assert stream.getvalue() == f"[dev] one-time code for +49…: {CODE}\n"


def test_console_sender_defaults_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    send(ConsoleSender("email"), email_code())
    assert capsys.readouterr().err == f"[dev] one-time code for ali…: {CODE}\n"


def test_console_sender_channel_is_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        ConsoleSender("fax")
    assert caught.value.errors == [
        "console: option 'channel' must be one of 'sms', 'email' but it's configured as 'fax'"
    ]


def test_mask_shows_at_most_three_characters() -> None:
    assert mask(PHONE) == "+49…"
    assert mask(EMAIL) == "ali…"
    assert mask("ab@c") == "ab…"
    assert mask("x") == "…"


def test_every_sender_satisfies_the_protocol() -> None:
    senders: list[Sender] = [
        smtp(25),
        twilio(),
        WebhookSmsSender(HOOK_URL),
        ConsoleSender("sms"),
    ]
    assert [sender.channel for sender in senders] == ["email", "sms", "sms", "sms"]

    async def close() -> None:
        for sender in senders:
            await sender.aclose()  # type: ignore[attr-defined]

    asyncio.run(close())
