"""Codes: CSPRNG, six digits, stored only as a keyed digest, strict input format."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import pytest

from gateway.otp.codes import Challenge, code_digest, codes_match, is_well_formed, new_code

KEY = b"k" * 32


def test_new_code_is_six_ascii_digits() -> None:
    samples = {new_code() for _ in range(500)}
    assert all(re.fullmatch(r"[0-9]{6}", code) for code in samples)
    assert len(samples) > 450  # a constant or tiny-range generator would repeat


@pytest.mark.parametrize(("drawn", "code"), [(0, "000000"), (7, "000007"), (999_999, "999999")])
def test_new_code_is_zero_padded(monkeypatch: pytest.MonkeyPatch, drawn: int, code: str) -> None:
    bounds: list[int] = []

    def randbelow(bound: int) -> int:
        bounds.append(bound)
        return drawn

    monkeypatch.setattr(secrets, "randbelow", randbelow)
    assert new_code() == code
    assert bounds == [10**6]


def test_digest_is_hmac_sha256_over_challenge_and_code() -> None:
    expected = hmac.new(KEY, b"ch-1:123456", hashlib.sha256).hexdigest()
    assert code_digest(KEY, "ch-1", "123456") == expected
    assert re.fullmatch(r"[0-9a-f]{64}", expected)
    assert "123456" not in expected


def test_digest_is_bound_to_key_and_challenge() -> None:
    digest = code_digest(KEY, "ch-1", "123456")
    assert code_digest(KEY, "ch-2", "123456") != digest
    assert code_digest(b"other-key" * 4, "ch-1", "123456") != digest
    assert code_digest(KEY, "ch-1", "123457") != digest


def test_codes_match() -> None:
    digest = code_digest(KEY, "ch-1", "123456")
    assert codes_match(KEY, "ch-1", "123456", digest) is True
    assert codes_match(KEY, "ch-1", "654321", digest) is False
    assert codes_match(KEY, "ch-2", "123456", digest) is False
    assert codes_match(KEY, "ch-1", "123456", "") is False


@pytest.mark.parametrize("value", ["000000", "123456", "999999"])
def test_well_formed(value: str) -> None:
    assert is_well_formed(value) is True


@pytest.mark.parametrize(
    "value",
    [
        123456, 123456.0, True, None, ["123456"], {"code": "123456"}, b"123456",
        " 123456", "123456 ", "123456\n", "\n123456", "12345", "1234567", "", "+12345",
        "-12345", "1_3456", "١٢٣٤٥٦", "１２３４５６", "۱۲۳۴۵۶", "12345٦", "１23456", "decoy",
    ],
    ids=repr,
)  # fmt: skip
def test_not_well_formed(value: object) -> None:
    assert is_well_formed(value) is False


def test_str_subclass_is_not_well_formed() -> None:
    class Code(str):
        pass

    assert is_well_formed(Code("123456")) is False


def test_challenge_round_trip() -> None:
    challenge = Challenge("id", "alice", "ab" * 32, "sms", 1_750_000_300.0)
    assert Challenge.load(challenge.dump()) == challenge
    assert b"alice" in challenge.dump()


@pytest.mark.parametrize("raw", [None, b"", b"not json", b"[]", b'{"id": "x"}', b"\xff"])
def test_unreadable_challenge_is_none(raw: bytes | None) -> None:
    assert Challenge.load(raw) is None
