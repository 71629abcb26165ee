"""The small contracts of the OTP stage: who a user is (Directory), how to reach them (Sender)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

LANGUAGES = ("de", "en", "es", "fr")
CHANNELS = ("sms", "email")


@dataclass(frozen=True, slots=True)
class Contact:
    """What the directory (CRM) holds about a user. The request never chooses these."""

    user_id: str
    phone: str | None = None  # E.164, e.g. +4915112345678
    email: str | None = None
    channel: str | None = None  # preferred: "sms" or "email"
    language: str | None = None  # one of LANGUAGES

    def preferred(self) -> tuple[str, str] | None:
        """(channel, destination) to send to, or None when there is no usable contact."""
        order = ("email", "sms") if self.channel == "email" else ("sms", "email")
        for channel in order:
            destination = self.phone if channel == "sms" else self.email
            if destination:
                return channel, destination
        return None


@dataclass(frozen=True, slots=True)
class OutgoingCode:
    """One message to deliver. ``code`` is the only place the clear code exists after sending."""

    channel: str  # "sms" | "email"
    destination: str
    code: str
    language: str
    expires_in: int  # seconds


class Directory(Protocol):
    async def lookup(self, user_id: str) -> Contact | None:
        """The user's contact, or None when unknown. Raises DirectoryError when unreachable."""


class Sender(Protocol):
    channel: str

    async def send(self, message: OutgoingCode) -> None:
        """Deliver or raise SendError. Never logs the code."""
