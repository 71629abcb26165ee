"""GDPR: what the gateway keeps about one user, and erasing it (``gateway users show|forget``).

Starting from a user id, everything is found through keys the gateway can derive, never by
scanning the store:

* ``link:anon:<sha256(user)>`` — the anonymous ids the user chatted under before logging in
  (an upgrade links them). The chatbot backend keys its own data by these ids, so ``show``
  lists them for the operator to erase there as well.
* ``link:sess:<sha256(user)>`` — the store keys of the user's sessions (hashes of cookie
  values, never the cookies). Rotated, logged-out and expired sessions stay in the set; only
  records still present are live.
* With the OTP hash key (:class:`gateway.otp.keys.OtpKeys`): the code challenge each of those
  sessions owns, and the user's counters (wrong tries, sends per hour, resend cooldown).

Not reachable from a user id, by design: a code requested by a visitor who typed the customer
number but never verified it (that session was never linked to anyone; the challenge dies
after ``otp.code_ttl``, 300 s by default); per-IP rate counters (keyed by address, not user);
and JWTs, which are stateless and keep working until they expire — stop issuing them first.

``forget`` deletes the session records before the link sets, so a run that fails half-way
(store unreachable) can simply be run again. A login that completes while ``forget`` runs can
create a new session after the links were read; run ``forget`` once the user's access has been
stopped upstream.
"""

from __future__ import annotations

import builtins
import json
import time
from typing import Any

from gateway.identity.session import SessionRecord, link_keys
from gateway.observe import audit, configure_user_ids, user_hash
from gateway.otp.codes import Challenge
from gateway.otp.keys import OtpKeys
from gateway.settings import Settings
from gateway.stores.base import Clock, Store


def otp_keys(settings: Settings) -> OtpKeys | None:
    """The OTP key names for a process that is not the gateway (the CLI); None without a key.

    Without a configured key the running gateway hashes with a random per-process key, which
    no other process can know, so its OTP state cannot be found from outside.
    """
    if settings.otp_hash_key is None:
        return None
    return OtpKeys(settings.otp_hash_key)


def _level(record: SessionRecord, now: float) -> str:
    return "otp" if record.elevated(now) else record.base_level


async def _live_sessions(store: Store, keys: builtins.set[str]) -> list[tuple[str, SessionRecord]]:
    found = []
    for key in sorted(keys):
        raw = await store.get(key)
        if raw is None:
            continue
        try:
            found.append((key, SessionRecord(**json.loads(raw))))
        except (ValueError, TypeError):
            continue  # a record this version cannot read is not shown, but forget deletes it
    return found


async def show(
    store: Store, user_id: str, *, otp: OtpKeys | None = None, clock: Clock = time.time
) -> dict[str, Any]:
    """Everything linked to ``user_id``, as JSON-able data (no cookie, code or secret)."""
    now = clock()
    anonymous_key, sessions_key = link_keys(user_id)
    anonymous_ids = await store.smembers(anonymous_key)
    live = await _live_sessions(store, await store.smembers(sessions_key))
    sessions = []
    for _key, record in live:
        entry: dict[str, Any] = {
            "level": _level(record, now),
            "created": int(record.created),
            "last_seen": int(record.last_seen),
        }
        if record.elevated(now) and record.otp_expires_at is not None:
            entry["otp_expires_at"] = int(record.otp_expires_at)
        if record.anonymous_id is not None:
            entry["anonymous_id"] = record.anonymous_id
        sessions.append(entry)
    result: dict[str, Any] = {
        "user_id": user_id,
        "user_hash": user_hash(user_id),
        "anonymous_ids": sorted(anonymous_ids),
        "sessions": {"count": len(sessions), "live": sessions},
        "otp": None,
    }
    if otp is not None:
        result["otp"] = await _otp_state(store, otp, user_id, [key for key, _ in live], now)
    return result


async def _otp_state(
    store: Store, otp: OtpKeys, user_id: str, owners: list[str], now: float
) -> dict[str, Any]:
    pending = []
    for owner in owners:
        challenge = Challenge.load(await store.get(otp.challenge(owner)))
        if challenge is None or challenge.user_id != user_id or challenge.expires_at <= now:
            continue
        tries = await store.get(otp.attempts(challenge.id))
        pending.append({"channel": challenge.channel, "expires_at": int(challenge.expires_at),
                        "attempts": int(tries or 0)})
    user = otp.user(user_id)
    failures = await store.get(otp.failures(user))
    sends = await store.get(otp.sends(user))
    cooldown = await store.ttl(otp.last_send(user))
    return {
        "pending": pending,
        "failures_this_hour": int(failures or 0),
        "sends_this_hour": int(sends or 0),
        "resend_in": int(cooldown or 0),
    }


async def forget(store: Store, user_id: str, *, otp: OtpKeys | None = None) -> dict[str, Any]:
    """Delete every session, challenge, counter and link of ``user_id``; returns the counts."""
    anonymous_key, sessions_key = link_keys(user_id)
    anonymous_ids = await store.smembers(anonymous_key)
    session_keys = await store.smembers(sessions_key)
    sessions = challenges = counters = 0
    for key in sorted(session_keys):
        sessions += int(await store.delete(key))
        if otp is not None:
            # ``take``: the challenge's id names its attempt counter, which goes with it.
            challenge = Challenge.load(await store.take(otp.challenge(key)))
            if challenge is not None:
                challenges += 1
                await store.delete(otp.attempts(challenge.id))
    if otp is not None:
        user = otp.user(user_id)
        for key in (otp.failures(user), otp.sends(user), otp.last_send(user)):
            counters += int(await store.delete(key))
    # The links go last: while they exist, a failed run can be repeated and finds everything.
    await store.delete(anonymous_key)
    await store.delete(sessions_key)
    summary = {
        "user_hash": user_hash(user_id),
        "sessions_deleted": sessions,
        "sessions_linked": len(session_keys),
        "anonymous_ids_unlinked": len(anonymous_ids),
        "otp_challenges_deleted": challenges,
        "otp_counters_deleted": counters,
        # Without the OTP hash key challenges and counters cannot be named (they expire alone).
        "otp_checked": otp is not None,
    }
    audit("forget", **summary)
    return {"user_id": user_id, **summary}


async def run_command(action: str, settings: Settings, user_id: str) -> dict[str, Any]:
    """``gateway users show|forget``: one call against the configured store, then close it."""
    from gateway.app import build_store  # the app module pulls in the whole pipeline

    # Users appear in the "forget" audit event as in the gateway's own logs (same salt).
    configure_user_ids(settings.ops.log_user_id, settings.ops.user_hash_salt)
    store = build_store(settings, time.time)
    try:
        if action == "forget":
            return await forget(store, user_id, otp=otp_keys(settings))
        return await show(store, user_id, otp=otp_keys(settings))
    finally:
        await store.aclose()
