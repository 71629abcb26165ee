"""Micro-benchmark of the session lookup on Redis: redis-py's GET vs the lean RESP client.

Times ``RedisStore.get`` of one ~200-byte session record, N times sequentially and N times
from 64 concurrent tasks, once through redis-py (the store as it was: ``_lean`` switched off)
and once through :mod:`gateway.stores.resp`; then ``SessionManager.load`` without and with the
record memo. Reports µs per call of this process's CPU (``time.process_time``: what the
gateway pays; Redis runs in its own process) and of wall-clock time, and how many garbage
collections ran per 1,000 calls. Needs a Redis; writes under a random ``gwbench:`` prefix and
deletes it afterwards.

    .venv/bin/python bench/micro_redis_get.py [calls] [redis-url]    # default 20000, db 15
"""

from __future__ import annotations

import asyncio
import gc
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import uvloop

from gateway.identity.session import SessionManager, SessionRecord, SessionSettings
from gateway.stores.redis import RedisStore

CONCURRENCY = 64


class _NoMemo(dict[bytes, SessionRecord]):
    """A memo that never remembers: SessionManager.load as it was before the memo."""

    def get(self, key: bytes, default: Any = None) -> Any:
        return default

    def __setitem__(self, key: bytes, value: SessionRecord) -> None:
        pass


class _Collections:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.count += 1


async def measure(label: str, call: Callable[[], Awaitable[object]], calls: int,
                  concurrency: int) -> None:
    for _ in range(500):  # warm up: connections open, memo filled
        await call()
    per_task = calls // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            await call()

    collections = _Collections()
    gc.callbacks.append(collections)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.callbacks.remove(collections)
    done = per_task * concurrency
    print(f"  {label:<44} {cpu / done * 1e6:7.1f} µs CPU  {wall / done * 1e6:7.1f} µs wall"
          f"  {collections.count * 1000 / done:5.1f} GC/1k calls")


async def one_round(old: RedisStore, new: RedisStore, session_id: str, key: str, raw: bytes,
                    calls: int, concurrency: int) -> None:
    print(f"{'sequential' if concurrency == 1 else f'{concurrency} concurrent tasks'}:")
    await measure("RedisStore.get, redis-py (before)", lambda: old.get(key), calls, concurrency)
    await measure("RedisStore.get, lean RESP client (after)", lambda: new.get(key), calls,
                  concurrency)
    settings = SessionSettings()
    before = SessionManager(old, settings)
    before._records = _NoMemo()
    after = SessionManager(new, settings)
    await measure("SessionManager.load, redis-py, no memo", lambda: before.load(session_id),
                  calls, concurrency)
    await measure("SessionManager.load, lean + memo", lambda: after.load(session_id), calls,
                  concurrency)
    now = time.time()
    timeout = settings.absolute_timeout
    record = SessionRecord(**json.loads(raw))

    async def identity_built() -> object:
        return record._identity(now, timeout)

    async def identity_memo() -> object:
        return record.identity(now, timeout)

    await measure("SessionRecord.identity, built (before)", identity_built, calls, concurrency)
    await measure("SessionRecord.identity, memoised (after)", identity_memo, calls, concurrency)


async def main(calls: int, url: str) -> None:
    prefix = f"gwbench:{secrets.token_hex(4)}:"
    old = RedisStore(url, prefix=prefix)
    new = RedisStore(url, prefix=prefix)
    if new._lean is None:
        sys.exit("this URL keeps RedisStore.get on redis-py (TLS or URL options)")
    old._lean = None  # RedisStore.get through redis-py, as before the lean client
    try:
        sessions = SessionManager(new, SessionSettings())
        session = await sessions.create(await sessions.new_record(
            base_level="authenticated", user_id="alice-000000", email="alice@example.test",
            name="Alice"))
        raw = await new.get(session.key)
        if raw is None or raw != await old.get(session.key):
            sys.exit("the two clients disagree")
        print(f"{calls} calls, record of {len(raw)} bytes, {url}")
        for concurrency in (1, CONCURRENCY):
            await one_round(old, new, session.id, session.key, raw, calls, concurrency)
    finally:
        await old.aclose()
        await new.aclose()
        with redis.Redis.from_url(url) as client:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    target = sys.argv[2] if len(sys.argv) > 2 else "redis://127.0.0.1:6379/15"
    uvloop.run(main(count, target))  # the gateway's loop (gateway/server.py)
