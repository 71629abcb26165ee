"""The OTP rules of CONTRACT §3: who may get a code, how often, and when a code counts.

Keys (all under ``otp:``; users, IPs and owners appear only as keyed hashes, never raw):

* ``otp:ch:{owner}`` — the owner's one challenge (JSON; the code only as a keyed digest),
  ttl ``code_ttl``. A send overwrites it, so the previous code is dead at once.
* ``otp:att:{challenge id}`` — tries on that challenge. ``incr`` hands every concurrent caller
  its own number; only numbers up to ``max_attempts`` get their code compared. It is created
  after the challenge with the same ttl, so it always outlives it.
* ``otp:fail:{user}`` — wrong tries per user across resends, a fixed one-hour window.
* ``otp:last:{user}`` — the resend cooldown, claimed with ``add`` (SET NX) so that of
  concurrent sends exactly one passes; ``otp:sends:{user}`` — sends per user per hour.
* ``otp:ip:send:{ip}``, ``otp:ip:verify:{ip}`` — per-client-IP counters over ``ip_window``.

The names are built in one place, :class:`gateway.otp.keys.OtpKeys` (GDPR reads them too).

Unknown users (and users without a usable contact) go through the same limits and get a decoy
challenge that no code matches, so neither ``send`` nor ``verify`` tells them apart from known
ones, unless the operator opts in to ``reveal_unknown_users``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import (
    BadRequest,
    DirectoryError,
    OtpError,
    OtpLocked,
    RateLimited,
    SendError,
    UnknownUser,
)
from gateway.observe import audit, user_hash
from gateway.otp.codes import Challenge, code_digest, codes_match, is_well_formed, new_code
from gateway.otp.keys import OtpKeys
from gateway.otp.masking import fake_destination, mask
from gateway.otp.model import CHANNELS, LANGUAGES, Contact, Directory, OutgoingCode, Sender
from gateway.stores.base import Clock, Store

logger = logging.getLogger("gateway.otp")

HOUR = 3600


@dataclass(frozen=True, slots=True)
class OtpSettings:
    code_ttl: int = 300
    max_attempts: int = 5  # wrong tries per challenge, then it is burned
    max_failures_per_hour: int = 10  # wrong tries per user per hour across resends -> locked
    resend_cooldown: int = 30
    max_sends_per_hour: int = 5  # per user
    ip_send_limit: int = 20  # per client IP per ip_window
    ip_verify_limit: int = 60
    ip_window: int = 600
    elevation_ttl: int = 3600  # absolute; the caller stores it in the session
    reveal_unknown_users: bool = False
    default_language: str = "en"


@dataclass(frozen=True, slots=True)
class SendResult:
    channel: str
    destination: str  # masked
    expires_in: int
    resend_in: int


class OtpInvalid(OtpError):
    status = 401
    code = "otp_invalid"
    default_message = "The code is wrong, expired or already used."


def _retry_after(seconds: float | None, fallback: float) -> dict[str, str]:
    value = fallback if seconds is None else seconds
    return {"Retry-After": str(max(1, math.ceil(value)))}


class OtpService:
    """Sends and verifies codes; every refusal is an exception from ``gateway.errors``."""

    def __init__(
        self,
        settings: OtpSettings,
        store: Store,
        directory: Directory,
        senders: Mapping[str, Sender],
        hash_key: bytes,
        *,
        clock: Clock = time.time,
    ) -> None:
        if len(hash_key) < 16:
            raise ValueError("the OTP hash key must be at least 16 bytes")
        self.settings = settings
        self._store = store
        self._directory = directory
        self._senders = dict(senders)
        self._hash_key = hash_key
        self.keys = OtpKeys(hash_key)
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        # How many codes were compared; tests use it to prove the attempt limit holds in races.
        self.evaluations = 0
        # Decoys claim the channel a real user most likely gets, among the configured ones.
        # Decoys use the channels a real user could have; which one is keyed by the user id, so
        # an unknown id answers the same every time and both channels occur.
        self._decoy_channels = [c for c in CHANNELS if c in self._senders] or [CHANNELS[0]]

    def _decoy_channel(self, user_id: str) -> str:
        digest = hmac.new(self._hash_key, b"decoy-channel:" + user_id.encode(), "sha256").digest()
        channel: str = self._decoy_channels[digest[0] % len(self._decoy_channels)]
        return channel

    async def send(
        self, *, owner: str, user_id: str, client_ip: str, language: str | None
    ) -> SendResult:
        s = self.settings
        await self._limit_ip("send", client_ip, s.ip_send_limit)
        user, uh = self.keys.user(user_id), user_hash(user_id)
        await self._refuse_if_locked(user)
        await self._claim_send(user)
        contact = await self._lookup(user_id, uh)
        route = self._route(contact, uh)
        challenge_id = secrets.token_hex(16)
        message: OutgoingCode | None = None
        if contact is None or route is None:
            if s.reveal_unknown_users:
                raise UnknownUser()
            why = "unknown_user" if contact is None else "no_contact"
            self._audit("otp_not_sent", user_hash=uh, reason=why)
            # A decoy's "code" is not six digits, so no code a client can send matches its
            # digest, and the digest costs and looks the same as a real one.
            channel, code = self._decoy_channel(user_id), "decoy"
            masked = fake_destination(self._hash_key, user_id, channel)
        else:
            channel, destination = route
            code = new_code()
            language = self._language(language, contact)
            message = OutgoingCode(channel, destination, code, language, s.code_ttl)
            masked = mask(channel, destination)
        digest = code_digest(self._hash_key, challenge_id, code)
        challenge = Challenge(challenge_id, user_id, digest, channel, self._clock() + s.code_ttl)
        await self._store.set(self.keys.challenge(owner), challenge.dump(), ttl=s.code_ttl)
        if message is not None:
            # Delivery runs in the background so that the answer, and its timing, is the same
            # whether the SMS gateway is fast, slow or down, and the same as for a decoy. The
            # set keeps a reference so the task is not garbage-collected mid-flight.
            task = asyncio.create_task(self._deliver(self._senders[channel], message, uh))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._audit("otp_sent", user_hash=uh, channel=channel, destination=masked)
        return SendResult(channel, masked, s.code_ttl, s.resend_cooldown)

    async def verify(self, *, owner: str, code: object, client_ip: str) -> str:
        """The verified user id, or an exception: verification never returns a failure."""
        s = self.settings
        # The format is checked before the store is touched, so garbage moves no counter.
        if not is_well_formed(code):
            raise BadRequest("The code must be exactly six digits.", reason="otp_code_format")
        await self._limit_ip("verify", client_ip, s.ip_verify_limit)
        key = self.keys.challenge(owner)
        challenge = Challenge.load(await self._store.get(key))
        if challenge is None or self._clock() >= challenge.expires_at:
            raise OtpInvalid()
        user = self.keys.user(challenge.user_id)
        uh, fail_key = user_hash(challenge.user_id), self.keys.failures(user)
        # A challenge sent before the user got locked (e.g. from another session) dies too.
        await self._refuse_if_locked(user, burn=key)
        attempt = await self._store.incr(self.keys.attempts(challenge.id), ttl=s.code_ttl)
        if attempt > s.max_attempts:
            # Over the limit the code is not even compared, so parallel guesses gain nothing.
            # The challenge is not deleted here: that could beat a concurrent correct verify
            # (attempt <= max) to its ``take``; the counter outlives it and refuses every try.
            raise OtpLocked(headers=await self._cooldown_left(user))
        self.evaluations += 1
        if codes_match(self._hash_key, challenge.id, code, challenge.digest):
            return await self._succeed(key, challenge, uh)
        failures = await self._store.incr(fail_key, ttl=HOUR)
        if failures >= s.max_failures_per_hour:
            await self._store.delete(key)
            self._audit("otp_locked", user_hash=uh, scope="user")
            raise OtpLocked(headers=_retry_after(await self._store.ttl(fail_key), HOUR))
        if attempt >= s.max_attempts:
            await self._store.delete(key)
            self._audit("otp_locked", user_hash=uh, scope="challenge")
            raise OtpLocked(headers=await self._cooldown_left(user))
        left = s.max_attempts - attempt
        self._audit("otp_failed", user_hash=uh, attempts_left=left)
        raise OtpInvalid(extra={"attempts_left": left})

    def _audit(self, event: str, **fields: Any) -> None:
        audit(event, **fields)  # A method so that metrics can count events (otp/metered.py).

    async def drain(self) -> None:
        """Wait for background deliveries (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _succeed(self, key: str, challenge: Challenge, uh: str) -> str:
        # Single use: of concurrent correct verifies, only the one that takes this challenge wins.
        taken = Challenge.load(await self._store.take(key))
        if taken is None or taken.id != challenge.id:
            if taken is not None:
                # A resend replaced it meanwhile: restore the newer one unless yet another exists.
                remaining = taken.expires_at - self._clock()
                if remaining > 0:
                    await self._store.add(key, taken.dump(), ttl=remaining)
            raise OtpInvalid()
        await self._store.delete(self.keys.attempts(challenge.id))
        self._audit("otp_verified", user_hash=uh)
        return challenge.user_id

    async def _limit_ip(self, action: str, client_ip: str, limit: int) -> None:
        key = self.keys.ip(action, client_ip)
        if await self._store.incr(key, ttl=self.settings.ip_window) > limit:
            retry = _retry_after(await self._store.ttl(key), self.settings.ip_window)
            raise RateLimited(reason=f"otp_{action}_ip_limit", headers=retry)

    async def _refuse_if_locked(self, user: str, *, burn: str | None = None) -> None:
        fail_key = self.keys.failures(user)
        failures = await self._store.get(fail_key)
        if failures is not None and int(failures) >= self.settings.max_failures_per_hour:
            if burn is not None:
                await self._store.delete(burn)
            raise OtpLocked(headers=_retry_after(await self._store.ttl(fail_key), HOUR))

    async def _claim_send(self, user: str) -> None:
        # Writes, not reads, decide races: ``add`` lets exactly one of concurrent sends through
        # per cooldown, and ``incr`` gives each send its own number. A refused send may count
        # in the fixed-hour window; that only holds back a user who is over the limit anyway.
        s, last_key, sends_key = self.settings, self.keys.last_send(user), self.keys.sends(user)
        if s.resend_cooldown and not await self._store.add(last_key, b"1", ttl=s.resend_cooldown):
            retry = _retry_after(await self._store.ttl(last_key), s.resend_cooldown)
            raise RateLimited(reason="otp_resend_cooldown", headers=retry)
        if await self._store.incr(sends_key, ttl=HOUR) > s.max_sends_per_hour:
            retry = _retry_after(await self._store.ttl(sends_key), HOUR)
            raise RateLimited(reason="otp_sends_per_hour", headers=retry)

    async def _lookup(self, user_id: str, uh: str) -> Contact | None:
        try:
            return await self._directory.lookup(user_id)
        except DirectoryError as exc:
            event = {"user_hash": uh, "reason": exc.reason}
            logger.warning("otp directory lookup failed", extra={"event": event})
            if self.settings.reveal_unknown_users:
                # An operator who reveals unknown users must not be told "unknown" when the
                # directory is merely down: that would be a wrong answer, not a uniform one.
                raise
            return None

    def _route(self, contact: Contact | None, uh: str) -> tuple[str, str] | None:
        """(channel, destination): the contact's preference first, among configured senders."""
        if contact is None:
            return None
        order = ("email", "sms") if contact.channel == "email" else ("sms", "email")
        for channel in order:
            destination = contact.phone if channel == "sms" else contact.email
            if destination and channel in self._senders:
                return channel, destination
        if contact.preferred() is not None:  # A contact without a configured sender: setup error.
            logger.warning("otp no sender", extra={"event": {"user_hash": uh}})
        return None

    def _language(self, requested: str | None, contact: Contact) -> str:
        for candidate in (requested, contact.language):
            if candidate:
                # "de-DE" and "de_AT" count as "de": the templates exist per language only.
                primary = candidate.strip().lower().replace("_", "-").split("-")[0]
                if primary in LANGUAGES:
                    return primary
        return self.settings.default_language

    async def _deliver(self, sender: Sender, message: OutgoingCode, uh: str) -> None:
        # Only the reason or the exception type is logged: a message or repr could quote the
        # code (OutgoingCode's repr holds it), and a traceback could quote request data.
        try:
            await sender.send(message)
        except SendError as exc:
            reason = exc.reason
        except Exception as exc:
            reason = type(exc).__name__
        else:
            return
        event = {"user_hash": uh, "channel": message.channel, "reason": reason}
        logger.warning("otp delivery failed", extra={"event": event})

    async def _cooldown_left(self, user: str) -> dict[str, str]:
        # A burned challenge: the user may ask for a new code once the cooldown is over.
        return _retry_after(await self._store.ttl(self.keys.last_send(user)), 1)
