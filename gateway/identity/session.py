"""Gateway sessions: an opaque cookie naming a server-side record (CONTRACT §2).

The cookie value is 256 random bits and means nothing by itself; the record lives in the store
under a SHA-256 of the value, so a dump of the store holds no usable cookie. A cookie value the
store does not know is never adopted (no session fixation): a new session always gets a new
value chosen here. Every level change (login, upgrade, elevation) moves the record to a new id
and deletes the old one in the same step, so the old cookie stops working at once.

Every request with a cookie reads its record from the store (a logout or rotation on any
replica counts at once; a WebSocket message reads the store's copy that Redis invalidates, see
``Store.get_cached``), but the bytes read are mostly the same from one request to the next:
``last_seen`` is written back at most once a ``touch_interval``. So :class:`SessionManager`
memoises the parsed record by those exact bytes (``json.loads`` + the dataclass cost ~4 µs, a
lookup ~0.05 µs), and a record memoises the Identity it grants. Neither can go stale: a record
is a pure, immutable function of its bytes, and an Identity of its record, the absolute timeout
and whether the elevation is still running; a session the store no longer has is refused
before the memo is consulted.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any

from gateway.identity.model import ANONYMOUS, AUTHENTICATED, OTP, Identity
from gateway.stores.base import Clock, Store

SESSION_PREFIX = "sess:"
LINK_PREFIX = "link:"

# Parsed records kept by SessionManager, by their stored bytes; the memo is emptied when full
# (cheaper per hit than an LRU, and refilled at once by the sessions still in use).
RECORD_MEMO_SIZE = 4096


@dataclass(frozen=True, slots=True)
class SessionSettings:
    idle_timeout: int = 30 * 60
    absolute_timeout: int = 24 * 60 * 60
    cookie_name: str = "__Host-gw_session"
    secure: bool = True
    # last_seen is written back at most this often: a store write per request would double the
    # store traffic for a precision nobody needs on a 30-minute idle timeout.
    touch_interval: int = 60


@dataclass(frozen=True, slots=True)
class SessionRecord:
    base_level: str  # "anonymous" or "authenticated": what remains when an elevation ends
    created: float
    last_seen: float
    anonymous_id: str | None = None
    user_id: str | None = None  # set by a JWT login
    otp_user_id: str | None = None  # set by an OTP verification on an anonymous session
    otp_expires_at: float | None = None
    email: str | None = None
    name: str | None = None
    # The Identity objects identity() built, by (absolute_timeout, elevated): not part of the
    # record (not stored, compared, hashed or copied by replace()). Sharing one frozen
    # Identity between requests is safe: nobody mutates it (its empty claims included).
    _identities: dict[tuple[int, bool], Identity] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def elevated(self, now: float) -> bool:
        return self.otp_expires_at is not None and now < self.otp_expires_at

    def identity(self, now: float, absolute_timeout: int) -> Identity:
        """The identity this session grants right now (elevation expiry applied)."""
        key = (absolute_timeout, self.otp_expires_at is not None and now < self.otp_expires_at)
        identity = self._identities.get(key)
        if identity is None:
            identity = self._identities[key] = self._identity(now, absolute_timeout)
        return identity

    def _identity(self, now: float, absolute_timeout: int) -> Identity:
        expires = self.created + absolute_timeout
        if self.elevated(now):
            user = self.user_id or self.otp_user_id
            assert user is not None  # noqa: S101 - an elevation always names its user
            return Identity(user_id=user, level=OTP, expires_at=expires, email=self.email,
                            name=self.name, anonymous_id=self._linked_anonymous_id())
        if self.base_level == AUTHENTICATED and self.user_id is not None:
            return Identity(user_id=self.user_id, level=AUTHENTICATED, expires_at=expires,
                            email=self.email, name=self.name,
                            anonymous_id=self._linked_anonymous_id())
        assert self.anonymous_id is not None  # noqa: S101 - anonymous sessions carry their id
        return Identity(user_id=self.anonymous_id, level=ANONYMOUS, expires_at=expires)

    def _linked_anonymous_id(self) -> str | None:
        return self.anonymous_id

    @property
    def bound_user(self) -> str | None:
        """The user this session is bound to (a JWT for anyone else is a subject mismatch)."""
        return self.user_id or self.otp_user_id

    def to_json(self) -> bytes:
        """The stored form: every field but the identity memo."""
        data = {name: getattr(self, name) for name in _STORED_FIELDS}
        return json.dumps(data, separators=(",", ":")).encode()


_STORED_FIELDS = tuple(f.name for f in fields(SessionRecord) if f.init)


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # the cookie value; never logged, never a store key
    key: str  # the store key: a hash of the id
    record: SessionRecord


def session_key(session_id: str) -> str:
    return SESSION_PREFIX + hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


def link_keys(user_id: str) -> tuple[str, str]:
    """The user's two durable link sets: (anonymous ids, session keys); GDPR reads them."""
    user_hash = hashlib.sha256(user_id.encode()).hexdigest()
    return f"{LINK_PREFIX}anon:{user_hash}", f"{LINK_PREFIX}sess:{user_hash}"


def new_anonymous_id() -> str:
    return "anon-" + secrets.token_urlsafe(16)


class SessionManager:
    def __init__(self, store: Store, settings: SessionSettings, *, clock: Clock = time.time):
        self.store = store
        self.settings = settings
        self.clock = clock
        self._records: dict[bytes, SessionRecord] = {}  # see the module docstring

    async def load(self, session_id: str, *, cached: bool = False) -> Session | None:
        """The live session named by a cookie value, or None (unknown, idle or too old).

        ``cached``: for a WebSocket's per-message re-check, read through the store's
        invalidated local copy (``Store.get_cached``) instead of a round trip.
        """
        if not 20 <= len(session_id) <= 128:
            return None
        key = session_key(session_id)
        store = self.store
        raw = await (store.get_cached(key) if cached else store.get(key))
        if raw is None:
            return None
        records = self._records
        record = records.get(raw)
        if record is None:
            record = SessionRecord(**json.loads(raw))
            if len(records) >= RECORD_MEMO_SIZE:
                records.clear()
            records[raw] = record
        now = self.clock()
        settings = self.settings
        if (now - record.last_seen > settings.idle_timeout
                or now - record.created > settings.absolute_timeout):
            await self.store.delete(key)
            return None
        if now - record.last_seen > settings.touch_interval:
            record = replace(record, last_seen=now)
            await self._write(key, record)
        return Session(id=session_id, key=key, record=record)

    async def create(self, record: SessionRecord) -> Session:
        session_id = secrets.token_urlsafe(32)
        key = session_key(session_id)
        await self._write(key, record)
        return Session(id=session_id, key=key, record=record)

    async def new_record(self, **fields: Any) -> SessionRecord:
        now = self.clock()
        fields.setdefault("base_level", ANONYMOUS)
        if fields["base_level"] == ANONYMOUS:
            fields.setdefault("anonymous_id", new_anonymous_id())
        return SessionRecord(created=now, last_seen=now, **fields)

    async def rotate(self, session: Session, record: SessionRecord) -> Session:
        """Move to a new id with ``record``; the old id is dead once this returns."""
        await self.store.delete(session.key)
        record = replace(record, last_seen=self.clock())
        return await self.create(record)

    async def destroy(self, session: Session) -> None:
        await self.store.delete(session.key)

    async def link(self, user_id: str, *, anonymous_id: str | None, session: Session) -> None:
        """Remember durably which anonymous ids and sessions belong to a user (GDPR)."""
        anonymous_key, sessions_key = link_keys(user_id)
        if anonymous_id is not None:
            await self.store.sadd(anonymous_key, anonymous_id)
        await self.store.sadd(sessions_key, session.key)

    async def _write(self, key: str, record: SessionRecord) -> None:
        settings = self.settings
        now = self.clock()
        remaining = min(
            settings.idle_timeout - (now - record.last_seen),
            settings.absolute_timeout - (now - record.created),
        )
        await self.store.set(key, record.to_json(), ttl=max(1.0, remaining))

    # Cookies -------------------------------------------------------------------------------

    def cookie(self, session: Session) -> bytes:
        max_age = int(self.settings.absolute_timeout - (self.clock() - session.record.created))
        return self._cookie(session.id, max(0, max_age))

    def clear_cookie(self) -> bytes:
        return self._cookie("", 0)

    def _cookie(self, value: str, max_age: int) -> bytes:
        parts = [f"{self.settings.cookie_name}={value}", "Path=/", f"Max-Age={max_age}",
                 "HttpOnly", "SameSite=Lax"]
        if self.settings.secure:
            parts.append("Secure")
        return "; ".join(parts).encode("ascii")

    def cookie_value(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """This gateway's cookie from the request's Cookie headers (first occurrence)."""
        name = self.settings.cookie_name.encode("ascii")
        for header, value in headers:
            if header != b"cookie":
                continue
            for part in value.split(b";"):
                key, sep, val = part.strip().partition(b"=")
                if sep and key == name:
                    try:
                        return val.decode("ascii")
                    except UnicodeDecodeError:
                        return None
        return None
