"""Build the directory and senders named by the settings (the OTP stage's plug-ins)."""

from __future__ import annotations

import httpx

from gateway.otp.directory import FileDirectory, HttpDirectory
from gateway.otp.model import Directory, Sender
from gateway.otp.senders import ConsoleSender, SmtpSender, TwilioSmsSender, WebhookSmsSender
from gateway.settings import DeliverySettings


def build_directory(settings: DeliverySettings, client: httpx.AsyncClient) -> Directory | None:
    if settings.directory_kind == "file" and settings.directory_path:
        return FileDirectory(settings.directory_path)
    if settings.directory_kind == "http" and settings.directory_url:
        return HttpDirectory(
            settings.directory_url,
            client=client,
            auth_header=settings.directory_auth_header,
            auth_value=settings.directory_auth_value,
            timeout=settings.directory_timeout,
        )
    return None


def build_senders(settings: DeliverySettings, client: httpx.AsyncClient) -> dict[str, Sender]:
    senders: dict[str, Sender] = {}
    if settings.email_kind == "smtp" and settings.email_from:
        senders["email"] = SmtpSender(
            settings.smtp_host,
            settings.smtp_port,
            sender_address=settings.email_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            use_tls=settings.smtp_use_tls,
            product=settings.product,
        )
    elif settings.email_kind == "console":
        senders["email"] = ConsoleSender("email")
    if settings.sms_kind == "twilio" and settings.twilio_account_sid and settings.twilio_auth_token:
        senders["sms"] = TwilioSmsSender(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            from_number=settings.twilio_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            client=client,
            product=settings.product,
        )
    elif settings.sms_kind == "webhook" and settings.webhook_url:
        senders["sms"] = WebhookSmsSender(
            settings.webhook_url,
            client=client,
            auth_header=settings.webhook_auth_header,
            auth_value=settings.webhook_auth_value,
            product=settings.product,
        )
    elif settings.sms_kind == "console":
        senders["sms"] = ConsoleSender("sms")
    return senders
