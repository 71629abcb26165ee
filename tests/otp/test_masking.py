"""Masked destinations: exact formats, and fakes indistinguishable by shape."""

from __future__ import annotations

import re

import pytest

from gateway.otp.masking import fake_destination, mask

PHONE = r"^\+\d{2}•{6}\d{2}$"
EMAIL = r"^[^@•]•{3}[^@•]?@[^@]+$"
KEY = b"m" * 32


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+4915112345678", "+49••••••78"),
        ("+12025550123", "+12••••••23"),
        ("+33 6 12 34 56 78", "+33••••••78"),
        ("004915112345678", "00••••••78"),
        ("+12345", "+••••••••••"),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask("sms", phone) == masked


def test_masked_phone_hides_the_length() -> None:
    assert len(mask("sms", "+4915112345678")) == len(mask("sms", "+3161234567"))


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("alice.smith@example.com", "a•••h@example.com"),
        ("bob@example.org", "b•••b@example.org"),
        ("al@example.com", "a•••@example.com"),
        ("a@example.com", "a•••@example.com"),
        ("odd@name@example.com", "o•••e@example.com"),
        ("no-at-sign", "•••"),
    ],
)
def test_mask_email(email: str, masked: str) -> None:
    assert mask("email", email) == masked


def test_mask_unknown_channel() -> None:
    with pytest.raises(ValueError):
        mask("pigeon", "x")


@pytest.mark.parametrize(("channel", "pattern"), [("sms", PHONE), ("email", EMAIL)])
def test_fake_destination_has_the_real_shape(channel: str, pattern: str) -> None:
    real = mask(channel, "+4915112345678" if channel == "sms" else "alice.smith@example.com")
    assert re.fullmatch(pattern, real)
    fakes = {fake_destination(KEY, f"user-{i}", channel) for i in range(200)}
    assert all(re.fullmatch(pattern, fake) for fake in fakes)
    assert len(fakes) > 100  # varied across users, like real destinations


def test_fake_destination_is_stable_and_keyed() -> None:
    first = fake_destination(KEY, "mallory", "sms")
    assert fake_destination(KEY, "mallory", "sms") == first
    others = {fake_destination(bytes([i]) * 32, "mallory", "sms") for i in range(20)}
    assert len(others) > 1


def test_fake_phone_never_has_an_impossible_country_code() -> None:
    leads = {fake_destination(KEY, f"u{i}", "sms")[1] for i in range(500)}
    assert "0" not in leads


def test_fake_destination_unknown_channel() -> None:
    with pytest.raises(ValueError):
        fake_destination(KEY, "mallory", "pigeon")
