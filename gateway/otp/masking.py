"""Masked destinations: enough for a user to recognise their phone or mailbox, no more.

Formats (tests hold them to these exact shapes):

* phone: ``+`` (when the number has one; directory numbers are E.164, and fakes always have
  it), the first two digits, six ``•``, the last two digits — ``+4915112345678`` →
  ``+49••••••78``. The number of hidden digits is not shown, so the
  length of the number is not revealed and a fake destination cannot be told apart by its
  length. A number with fewer than six digits shows no digits at all: ``+••••••••••``.
* e-mail: the first and last character of the local part around ``•••``, then the domain —
  ``alice.smith@example.com`` → ``a•••h@example.com``; a local part of one or two characters
  shows its first character only: ``al@example.com`` → ``a•••@example.com``.

:func:`fake_destination` makes a destination of the same shape for a user the directory does
not know, derived with HMAC from the user id: the same id always gets the same answer (a
random one would change between requests and give the game away) and the answer reveals
nothing about the id without the key.
"""

from __future__ import annotations

import hashlib
import hmac

BULLET = "•"
PHONE_HIDDEN = BULLET * 6
EMAIL_HIDDEN = BULLET * 3

# Plausible leading digits and mail domains for fake destinations. Leading digits that no real
# number has (a country code cannot start with 0) or an odd domain would mark an answer as fake.
_FAKE_PHONE_LEADS = (
    "49", "43", "41", "33", "32", "34", "31", "39", "44", "45", "46", "47", "48", "35", "30",
    "12", "13", "14", "15", "16", "17", "19", "52", "54", "55", "61",
)  # fmt: skip
_FAKE_MAIL_DOMAINS = (
    "gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com", "gmx.de", "web.de",
    "t-online.de", "gmx.net", "orange.fr", "free.fr", "yahoo.es", "outlook.es", "proton.me",
)  # fmt: skip
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"


def mask_phone(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch in _DIGITS)
    plus = "+" if phone.strip().startswith("+") else ""
    if len(digits) < 6:
        return plus + BULLET * 10
    return f"{plus}{digits[:2]}{PHONE_HIDDEN}{digits[-2:]}"


def mask_email(email: str) -> str:
    local, at, domain = email.strip().rpartition("@")
    if not at or not local:
        # Not an address the directory should hold; show nothing of it rather than guess.
        return EMAIL_HIDDEN
    if len(local) <= 2:
        return f"{local[0]}{EMAIL_HIDDEN}@{domain}"
    return f"{local[0]}{EMAIL_HIDDEN}{local[-1]}@{domain}"


def mask(channel: str, destination: str) -> str:
    """``destination`` masked for showing to the user (see the module docstring for formats)."""
    if channel == "sms":
        return mask_phone(destination)
    if channel == "email":
        return mask_email(destination)
    raise ValueError(f"unknown channel {channel!r}")


def fake_destination(key: bytes, user_id: str, channel: str) -> str:
    """A masked-looking destination for an unknown user, stable per user id and key."""
    seed = hmac.new(key, f"fake-destination:{channel}:{user_id}".encode(), hashlib.sha256)
    raw = seed.digest()
    if channel == "sms":
        lead = _FAKE_PHONE_LEADS[raw[0] % len(_FAKE_PHONE_LEADS)]
        tail = _DIGITS[raw[1] % 10] + _DIGITS[raw[2] % 10]
        return f"+{lead}{PHONE_HIDDEN}{tail}"
    if channel == "email":
        first = _LOWER[raw[0] % len(_LOWER)]
        last = _LOWER[raw[1] % len(_LOWER)]
        domain = _FAKE_MAIL_DOMAINS[raw[2] % len(_FAKE_MAIL_DOMAINS)]
        return f"{first}{EMAIL_HIDDEN}{last}@{domain}"
    raise ValueError(f"unknown channel {channel!r}")
