"""The OTP rules of CONTRACT §3, one test per rule, on the memory store with a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Iterator

import pytest

from gateway.errors import (
    BadRequest,
    DirectoryError,
    GatewayError,
    OtpLocked,
    RateLimited,
    SendError,
    UnknownUser,
)
from gateway.observe import user_hash
from gateway.otp import service as service_module
from gateway.otp.masking import fake_destination
from gateway.otp.service import OtpInvalid, OtpService, OtpSettings
from gateway.stores.memory import MemoryStore
from tests.otp.service_fixtures import (
    CONTACTS,
    EMAIL_MASK,
    HASH_KEY,
    IP,
    OTHER_OWNER,
    PHONE_MASK,
    FakeClock,
    FakeDirectory,
    Harness,
    RecordingSender,
    make_harness,
    run,
    wrong,
)


@pytest.fixture
def h() -> Harness:
    return make_harness()


# The happy path and single use.


def test_code_from_the_message_verifies(h: Harness) -> None:
    async def scenario() -> None:
        result = await h.send("alice")
        assert result == service_module.SendResult("sms", "+49••••••78", 300, 30)
        await h.service.drain()
        [message] = h.sent()
        assert (message.channel, message.destination) == ("sms", "+4915112345678")
        assert message.expires_in == 300
        assert re.fullmatch(r"[0-9]{6}", message.code)
        assert await h.verify(message.code) == "alice"

    run(scenario())


def test_email_contact_gets_email(h: Harness) -> None:
    async def scenario() -> None:
        result = await h.send("bob")
        assert (result.channel, result.destination) == ("email", "b•••s@example.com")
        assert await h.verify(await h.last_code()) == "bob"

    run(scenario())


def test_replay_after_success_is_invalid(h: Harness) -> None:
    async def scenario() -> None:
        await h.send()
        code = await h.last_code()
        assert await h.verify(code) == "alice"
        with pytest.raises(OtpInvalid) as info:
            await h.verify(code)
        assert (info.value.status, info.value.code) == (401, "otp_invalid")
        assert info.value.message == "The code is wrong, expired or already used."

    run(scenario())


def test_resend_kills_the_old_code(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    codes: Iterator[str] = iter(["111111", "222222"])
    monkeypatch.setattr(service_module, "new_code", lambda: next(codes))

    async def scenario() -> None:
        await h.send()
        h.clock.advance(31)
        await h.send()
        with pytest.raises(OtpInvalid):
            await h.verify("111111")
        assert await h.verify("222222") == "alice"

    run(scenario())


def test_code_expires_after_ttl(h: Harness) -> None:
    async def scenario() -> None:
        await h.send()
        code = await h.last_code()
        h.clock.advance(301)
        with pytest.raises(OtpInvalid):
            await h.verify(code)

    run(scenario())


def test_expiry_follows_the_service_clock_even_if_the_store_still_holds_it() -> None:
    async def scenario() -> None:
        clock, store_clock = FakeClock(), FakeClock()
        sender = RecordingSender("sms")
        service = OtpService(
            OtpSettings(),
            MemoryStore(clock=store_clock),
            FakeDirectory(CONTACTS),
            {"sms": sender},
            HASH_KEY,
            clock=clock,
        )
        await service.send(owner="o", user_id="alice", client_ip=IP, language=None)
        await service.drain()
        clock.advance(300)
        with pytest.raises(OtpInvalid):
            await service.verify(owner="o", code=sender.sent[0].code, client_ip=IP)

    run(scenario())


# Attempt limits.


def test_five_wrong_codes_burn_the_challenge(h: Harness) -> None:
    async def scenario() -> None:
        await h.send()
        code = await h.last_code()
        for left in (4, 3, 2, 1):
            with pytest.raises(OtpInvalid) as info:
                await h.verify(wrong(code))
            assert info.value.extra == {"attempts_left": left}
        with pytest.raises(OtpLocked) as locked:
            await h.verify(wrong(code))
        assert (locked.value.status, locked.value.code) == (429, "otp_locked")
        assert locked.value.headers["Retry-After"] == "30"
        with pytest.raises(OtpInvalid):
            await h.verify(code)

    run(scenario())


def test_user_is_locked_after_ten_failures_across_resends(h: Harness) -> None:
    async def scenario() -> None:
        # A challenge from another session, sent before the lock, must die with it.
        await h.send(owner=OTHER_OWNER)
        other_code = await h.last_code()
        for _ in range(2):
            h.clock.advance(31)
            await h.send()
            code = await h.last_code()
            for _ in range(4):
                with pytest.raises(OtpInvalid):
                    await h.verify(wrong(code))
            with pytest.raises(OtpLocked):
                await h.verify(wrong(code))
        h.clock.advance(31)
        with pytest.raises(OtpLocked) as on_send:
            await h.send()
        assert 0 < int(on_send.value.headers["Retry-After"]) <= 3600
        with pytest.raises(OtpLocked):
            await h.verify(other_code, owner=OTHER_OWNER)
        # The lock is a fixed one-hour window.
        h.clock.advance(3600)
        await h.send()
        assert await h.verify(await h.last_code()) == "alice"

    run(scenario())


# Send limits.


def test_resend_cooldown(h: Harness) -> None:
    async def scenario() -> None:
        await h.send()
        h.clock.advance(10)
        with pytest.raises(RateLimited) as info:
            await h.send(owner=OTHER_OWNER)
        assert (info.value.status, info.value.code) == (429, "rate_limited")
        assert info.value.headers == {"Retry-After": "20"}
        h.clock.advance(20)
        await h.send()

    run(scenario())


def test_sixth_send_in_an_hour_is_refused(h: Harness) -> None:
    async def scenario() -> None:
        for _ in range(5):
            await h.send()
            h.clock.advance(31)
        with pytest.raises(RateLimited) as info:
            await h.send()
        assert info.value.headers == {"Retry-After": str(3600 - 5 * 31)}
        await h.service.drain()
        assert len(h.sent()) == 5

    run(scenario())


def test_concurrent_sends_pass_one_at_a_time(h: Harness) -> None:
    async def scenario() -> None:
        results = await asyncio.gather(*(h.send() for _ in range(10)), return_exceptions=True)
        assert sum(not isinstance(r, BaseException) for r in results) == 1
        assert all(isinstance(r, RateLimited) for r in results if isinstance(r, BaseException))

    run(scenario())


def test_per_ip_send_limit() -> None:
    h = make_harness(ip_send_limit=3)

    async def scenario() -> None:
        for user in ("alice", "bob", "carol"):
            await h.send(user)
        with pytest.raises(RateLimited) as info:
            await h.send("nocontact")
        assert info.value.headers == {"Retry-After": "600"}
        await h.send("nocontact", ip="198.51.100.1")
        h.clock.advance(600)
        await h.send("mallory")

    run(scenario())


def test_per_ip_verify_limit() -> None:
    h = make_harness(ip_verify_limit=3)

    async def scenario() -> None:
        await h.send()
        code = await h.last_code()
        for _ in range(3):
            with pytest.raises(OtpInvalid):
                await h.verify("000000", owner=OTHER_OWNER)
        with pytest.raises(RateLimited) as info:
            await h.verify(code)
        assert info.value.headers == {"Retry-After": "600"}
        assert await h.verify(code, ip="198.51.100.1") == "alice"

    run(scenario())


# Races: the limits hold under parallel requests.


def test_parallel_wrong_codes_evaluate_at_most_max_attempts(h: Harness) -> None:
    async def scenario() -> None:
        await h.send()
        code = await h.last_code()
        # From 200 addresses, so that the per-IP limit is not what stops them.
        attempts = (h.verify(wrong(code), ip=f"10.0.0.{i}") for i in range(200))
        results = await asyncio.gather(*attempts, return_exceptions=True)
        assert h.service.evaluations <= 5
        assert all(isinstance(r, OtpInvalid | OtpLocked) for r in results)
        with pytest.raises((OtpInvalid, OtpLocked)):
            await h.verify(code)

    run(scenario())


def test_parallel_correct_codes_succeed_once(h: Harness) -> None:
    async def scenario() -> None:
        await h.send()
        code = await h.last_code()
        results = await asyncio.gather(*(h.verify(code) for _ in range(20)), return_exceptions=True)
        assert results.count("alice") == 1
        assert all(isinstance(r, OtpInvalid | OtpLocked) for r in results if r != "alice")

    run(scenario())


# Input hardening: the code must be a str of six ASCII digits.

BAD_CODES: list[object] = [
    123456, 123456.0, True, False, None, ["123456"], {"code": "123456"}, b"123456",
    " 123456", "123456 ", "123456\n", "12345", "1234567", "", "+12345", "-12345", "12 456",
    "١٢٣٤٥٦", "１２３４５６", "12345٦", "0x1234", "1e5000",
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_CODES, ids=repr)
def test_malformed_codes_are_refused_before_any_counter(bad: object) -> None:
    h = make_harness(ip_verify_limit=2)

    async def scenario() -> None:
        await h.send()
        code = await h.last_code()
        for _ in range(10):
            with pytest.raises(BadRequest) as info:
                await h.verify(bad)
            assert (info.value.status, info.value.reason) == (400, "otp_code_format")
        with pytest.raises(OtpInvalid) as wrong_once:
            await h.verify(wrong(code))
        assert wrong_once.value.extra == {"attempts_left": 4}
        assert await h.verify(code) == "alice"
        assert h.service.evaluations == 2

    run(scenario())


def test_str_subclass_is_refused(h: Harness) -> None:
    class Sneaky(str):
        pass

    async def scenario() -> None:
        await h.send()
        with pytest.raises(BadRequest):
            await h.verify(Sneaky(await h.last_code()))

    run(scenario())


# Binding and enumeration.


def test_challenge_is_bound_to_its_owner(h: Harness) -> None:
    async def scenario() -> None:
        await h.send()
        code = await h.last_code()
        with pytest.raises(OtpInvalid):
            await h.verify(code, owner=OTHER_OWNER)
        assert await h.verify(code) == "alice"

    run(scenario())


def _shape(result: service_module.SendResult) -> dict[str, type]:
    return {name: type(value) for name, value in dataclasses.asdict(result).items()}


@pytest.mark.parametrize("unknown", ["mallory", "nocontact"])
def test_unknown_users_look_like_known_ones(h: Harness, unknown: str) -> None:
    async def scenario() -> None:
        known = await h.send("alice")
        h.clock.advance(31)
        fake = await h.send(unknown, owner=OTHER_OWNER)
        assert _shape(fake) == _shape(known)
        # The decoy channel is one a real user could have, chosen by a keyed hash of the id.
        assert fake.channel in ("sms", "email")
        assert (fake.expires_in, fake.resend_in) == (300, 30)
        assert re.fullmatch(PHONE_MASK, known.destination)
        assert re.fullmatch(PHONE_MASK if fake.channel == "sms" else EMAIL_MASK,
                            fake.destination)
        assert fake.destination == fake_destination(HASH_KEY, unknown, fake.channel)
        await h.service.drain()
        assert [m.destination for m in h.sent()] == ["+4915112345678"]
        # Verifying behaves the same too: counted tries, then the same lock.
        for left in (4, 3, 2, 1):
            with pytest.raises(OtpInvalid) as info:
                await h.verify("123456", owner=OTHER_OWNER)
            assert info.value.extra == {"attempts_left": left}
        with pytest.raises(OtpLocked):
            await h.verify("123456", owner=OTHER_OWNER)
        # Limits count for unknown ids as well, so probing costs the same.
        with pytest.raises(RateLimited):
            await h.send(unknown, owner=OTHER_OWNER)

    run(scenario())


def test_unknown_user_with_email_only_gets_an_email_shape() -> None:
    h = make_harness(channels=("email",))

    async def scenario() -> None:
        known = await h.send("bob")
        fake = await h.send("mallory")
        assert known.channel == fake.channel == "email"
        assert re.fullmatch(EMAIL_MASK, known.destination)
        assert re.fullmatch(EMAIL_MASK, fake.destination)

    run(scenario())


def test_directory_failure_answers_like_unknown(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.directory.down = True

    async def scenario() -> None:
        result = await h.send("alice")
        assert result.destination == fake_destination(HASH_KEY, "alice", result.channel)
        assert re.fullmatch(PHONE_MASK if result.channel == "sms" else EMAIL_MASK,
                            result.destination)

    with caplog.at_level(logging.WARNING, logger="gateway.otp"):
        run(scenario())
    [record] = [r for r in caplog.records if r.name == "gateway.otp"]
    assert record.event == {"user_hash": user_hash("alice"), "reason": "crm_unreachable"}  # type: ignore[attr-defined]


def test_reveal_unknown_users_opt_in() -> None:
    h = make_harness(reveal_unknown_users=True)

    async def scenario() -> None:
        with pytest.raises(UnknownUser) as info:
            await h.send("mallory")
        assert (info.value.status, info.value.code) == (404, "unknown_user")
        h.clock.advance(31)
        h.directory.down = True
        with pytest.raises(DirectoryError):
            await h.send("alice")

    run(scenario())


# Language and delivery.


@pytest.mark.parametrize(
    ("user", "requested", "default", "expected"),
    [
        ("alice", "fr", "en", "fr"),
        ("alice", "es-ES", "en", "es"),
        ("alice", "xx", "en", "de"),
        ("alice", None, "en", "de"),
        ("carol", None, "en", "en"),
        ("carol", "klingon", "fr", "fr"),
        ("carol", "DE_at", "en", "de"),
    ],
)
def test_language_choice(user: str, requested: str | None, default: str, expected: str) -> None:
    h = make_harness(default_language=default)

    async def scenario() -> None:
        await h.send(user, language=requested)
        await h.service.drain()
        assert h.sent()[-1].language == expected

    run(scenario())


@pytest.mark.parametrize("failure", ["send_error", "crash"])
def test_sender_failure_changes_nothing_and_leaks_no_code(
    failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    h = make_harness()

    async def scenario() -> None:
        healthy = await h.send("carol")
        await h.service.drain()
        h.clock.advance(31)
        if failure == "send_error":
            h.senders["sms"].fail = SendError(reason="provider_refused")
        else:
            # A careless sender quotes the code in its exception message.
            h.senders["sms"].leak = True
        broken = await h.send("alice", owner=OTHER_OWNER)
        await h.service.drain()
        assert broken == dataclasses.replace(healthy, destination="+49••••••78")
        assert await h.verify(h.sent()[-1].code, owner=OTHER_OWNER) == "alice"

    with caplog.at_level(logging.DEBUG):
        run(scenario())
    codes = [m.code for m in h.sent()]
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert not any(code in text for code in codes)
    warnings = [r for r in caplog.records if r.getMessage() == "otp delivery failed"]
    reason = "provider_refused" if failure == "send_error" else "RuntimeError"
    assert [r.event["reason"] for r in warnings][-1] == reason  # type: ignore[attr-defined]


def test_audit_events_carry_hashes_and_masks_only(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        await h.send()
        code = await h.last_code()
        with pytest.raises(OtpInvalid):
            await h.verify(wrong(code))
        await h.verify(code)

    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        run(scenario())
    events = [r.event for r in caplog.records if r.name == "gateway.audit"]  # type: ignore[attr-defined]
    uh = user_hash("alice")
    assert events == [
        {"audit": "otp_sent", "user_hash": uh, "channel": "sms", "destination": "+49••••••78"},
        {"audit": "otp_failed", "user_hash": uh, "attempts_left": 4},
        {"audit": "otp_verified", "user_hash": uh},
    ]


def test_store_holds_no_clear_code_and_no_raw_identifiers(h: Harness) -> None:
    async def scenario() -> None:
        await h.send("alice")
        code = await h.last_code()
        with pytest.raises(OtpInvalid):
            await h.verify(wrong(code))
        assert all(key.startswith("otp:") for key in h.store.keys)
        assert not any(raw in key for key in h.store.keys for raw in ("alice", IP, "owner"))
        for key in h.store.keys:
            value = await h.store.inner.get(key)
            assert value is None or code.encode() not in value

    run(scenario())


def test_errors_render_without_secrets(h: Harness) -> None:
    async def scenario() -> GatewayError:
        await h.send()
        code = await h.last_code()
        try:
            await h.verify(wrong(code))
        except OtpInvalid as exc:
            return exc
        raise AssertionError("a wrong code verified")

    error = run(scenario())
    assert error.body() == (
        b'{"error":"otp_invalid","message":"The code is wrong, expired or already used.",'
        b'"attempts_left":4}'
    )


def test_short_hash_key_is_refused() -> None:
    with pytest.raises(ValueError):
        OtpService(OtpSettings(), MemoryStore(), FakeDirectory({}), {}, b"short")
