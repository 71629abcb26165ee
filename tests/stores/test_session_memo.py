"""SessionManager's memo of parsed records, over every store backend (memory and Redis).

The memo is keyed by the exact bytes the store returned, so it can never answer for a session
the store no longer has (logout, rotation, expiry) nor hide a change (a touched or rewritten
record is new bytes). These tests hold it to that on both backends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from gateway.identity import session as session_module
from gateway.identity.model import ANONYMOUS, AUTHENTICATED, OTP
from gateway.identity.session import SessionManager, SessionRecord, SessionSettings
from gateway.stores.base import Store
from tests.stores.conftest import FakeClock, Scenario

Run = Callable[[Scenario], None]
SETTINGS = SessionSettings(idle_timeout=600, absolute_timeout=3600, touch_interval=60)


def manager(store: Store) -> tuple[SessionManager, FakeClock]:
    clock = FakeClock(time.time())  # near real time: Redis expires keys by its own clock
    return SessionManager(store, SETTINGS, clock=clock), clock


def test_the_same_bytes_give_the_same_record_and_identity(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        sessions, clock = manager(store)
        created = await sessions.create(await sessions.new_record(
            base_level=AUTHENTICATED, user_id="alice", email="a@example.test"))
        first = await sessions.load(created.id)
        second = await sessions.load(created.id)
        assert first is not None and second is not None
        assert first.record == second.record == created.record
        assert first.record is second.record  # parsed once
        identity = first.record.identity(clock(), SETTINGS.absolute_timeout)
        assert identity.user_id == "alice" and identity.level == AUTHENTICATED
        assert second.record.identity(clock() + 1, SETTINGS.absolute_timeout) is identity
        # Another absolute timeout is another identity, not the memoised one.
        other = second.record.identity(clock(), 60)
        assert other.expires_at == created.record.created + 60 != identity.expires_at

    run_store(scenario)


def test_a_logged_out_session_is_refused_although_its_bytes_are_memoised(run_store: Run
                                                                         ) -> None:
    async def scenario(store: Store) -> None:
        sessions, _ = manager(store)
        session = await sessions.create(await sessions.new_record())
        assert await sessions.load(session.id) is not None
        assert sessions._records  # the memo holds its bytes
        await sessions.destroy(session)
        assert await sessions.load(session.id) is None
        # A rotation kills the old id the same way.
        live = await sessions.create(await sessions.new_record())
        assert await sessions.load(live.id) is not None
        rotated = await sessions.rotate(live, replace(live.record, base_level=AUTHENTICATED,
                                                      user_id="bob"))
        assert await sessions.load(live.id) is None
        loaded = await sessions.load(rotated.id)
        assert loaded is not None and loaded.record.user_id == "bob"

    run_store(scenario)


def test_a_touched_record_is_new_bytes_and_limits_still_apply(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        sessions, clock = manager(store)
        session = await sessions.create(await sessions.new_record())
        first = await sessions.load(session.id)
        assert first is not None
        clock.advance(SETTINGS.touch_interval + 1)
        touched = await sessions.load(session.id)
        assert touched is not None and touched.record.last_seen == clock()
        again = await sessions.load(session.id)
        assert again is not None and again.record.last_seen == clock()
        # Idle timeout: judged on the clock at each load, memo or not.
        clock.advance(SETTINGS.idle_timeout + 1)
        assert await sessions.load(session.id) is None

    run_store(scenario)


def test_an_elevation_ends_on_time_with_the_identity_memoised(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        sessions, clock = manager(store)
        record = await sessions.new_record(otp_user_id="C-1", otp_expires_at=clock() + 30)
        session = await sessions.create(record)
        loaded = await sessions.load(session.id)
        assert loaded is not None
        during = loaded.record.identity(clock(), SETTINGS.absolute_timeout)
        assert (during.level, during.user_id) == (OTP, "C-1")
        clock.advance(31)
        loaded = await sessions.load(session.id)
        assert loaded is not None
        after = loaded.record.identity(clock(), SETTINGS.absolute_timeout)
        assert after.level == ANONYMOUS and after.user_id == record.anonymous_id

    run_store(scenario)


def test_the_stored_form_holds_the_fields_only(run_store: Run) -> None:
    async def scenario(store: Store) -> None:
        sessions, clock = manager(store)
        record = await sessions.new_record()
        record.identity(clock(), SETTINGS.absolute_timeout)  # fills the identity memo
        session = await sessions.create(record)
        raw = await store.get(session.key)
        assert raw is not None
        stored = json.loads(raw)
        assert "_identities" not in stored
        assert SessionRecord(**stored) == record
        # replace() starts a new record with an empty memo: its identity is its own.
        upgraded = replace(record, base_level=AUTHENTICATED, user_id="carol")
        assert upgraded.identity(clock(), SETTINGS.absolute_timeout).user_id == "carol"

    run_store(scenario)


def test_the_memo_is_bounded(run_store: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "RECORD_MEMO_SIZE", 5)

    async def scenario(store: Store) -> None:
        sessions, _ = manager(store)
        ids = [(await sessions.create(await sessions.new_record())).id for _ in range(12)]
        for session_id in ids:
            assert await sessions.load(session_id) is not None
            assert len(sessions._records) <= 5

    run_store(scenario)
