"""Fakes for the OTP service tests: a hand-moved clock, a dict directory, recording senders.

Named ``service_fixtures`` rather than ``conftest`` because tests/otp is shared with the
directory and sender tests; the test modules import what they use from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gateway.errors import DirectoryError
from gateway.otp.model import Contact, OutgoingCode
from gateway.otp.service import OtpService, OtpSettings, SendResult
from gateway.stores.base import Store
from gateway.stores.memory import MemoryStore
from tests.support.clock import FakeClock as SharedClock

T = TypeVar("T")

NOW = 1_750_000_000.0
HASH_KEY = b"test-otp-hash-key-32-bytes-long!"
OWNER = "owner-a"
OTHER_OWNER = "owner-b"
IP = "203.0.113.7"
PHONE_MASK = r"^\+\d{2}•{6}\d{2}$"
EMAIL_MASK = r"^[^@•]•{3}[^@•]?@[^@]+$"

CONTACTS = {
    "alice": Contact("alice", phone="+4915112345678", language="de"),
    "bob": Contact("bob", email="bob.jones@example.com", channel="email"),
    "carol": Contact("carol", phone="+33612345678"),
    "nocontact": Contact("nocontact"),
}


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one test's async body; pytest-asyncio is deliberately not a dependency."""
    return asyncio.run(coro)


class FakeClock(SharedClock):
    def __init__(self, now: float = NOW) -> None:
        super().__init__(now)

class FakeDirectory:
    def __init__(self, contacts: dict[str, Contact]) -> None:
        self.contacts = dict(contacts)
        self.down = False

    async def lookup(self, user_id: str) -> Contact | None:
        if self.down:
            raise DirectoryError(reason="crm_unreachable")
        return self.contacts.get(user_id)


class RecordingSender:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sent: list[OutgoingCode] = []
        self.fail: BaseException | None = None
        self.leak = False  # raise an error whose message quotes the code

    async def send(self, message: OutgoingCode) -> None:
        self.sent.append(message)
        if self.fail is not None:
            raise self.fail
        if self.leak:
            raise RuntimeError(f"could not deliver {message.code} to {message.destination}")


class YieldingStore:
    """Hands control back to the event loop before every operation, like a network store.

    The memory store never suspends, so ``asyncio.gather`` would run concurrent requests one
    after another. This wrapper interleaves them at every store call, which is where a Redis
    round trip would, so race tests exercise the service's read-modify-write windows. It also
    records every key it sees.
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.keys: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if args:
                self.keys.add(args[0])
            await asyncio.sleep(0)
            return await method(*args, **kwargs)

        return call


@dataclass
class Harness:
    service: OtpService
    store: YieldingStore
    clock: FakeClock
    directory: FakeDirectory
    senders: dict[str, RecordingSender] = field(default_factory=dict)

    def sent(self) -> list[OutgoingCode]:
        return [m for sender in self.senders.values() for m in sender.sent]

    async def send(
        self,
        user_id: str = "alice",
        *,
        owner: str = OWNER,
        ip: str = IP,
        language: str | None = None,
    ) -> SendResult:
        return await self.service.send(
            owner=owner, user_id=user_id, client_ip=ip, language=language
        )

    async def verify(self, code: object, *, owner: str = OWNER, ip: str = IP) -> str:
        return await self.service.verify(owner=owner, code=code, client_ip=ip)

    async def last_code(self) -> str:
        await self.service.drain()
        return self.sent()[-1].code


def make_harness(channels: tuple[str, ...] = ("sms", "email"), **settings: Any) -> Harness:
    clock = FakeClock()
    store = YieldingStore(MemoryStore(clock=clock))
    directory = FakeDirectory(CONTACTS)
    senders = {channel: RecordingSender(channel) for channel in channels}
    service = OtpService(OtpSettings(**settings), store, directory, senders, HASH_KEY, clock=clock)
    return Harness(service, store, clock, directory, senders)


def wrong(code: str) -> str:
    """A well-formed code that is certainly not ``code``."""
    return f"{(int(code) + 1) % 10**6:06d}"
