"""Timeouts on an injectable clock: the app in process, a real backend, no sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import load_settings
from tests.conftest import TEST_POLICIES
from tests.support.clock import FakeClock
from tests.support.delivery import Inbox, running_receivers
from tests.support.procs import Recorder

Scenario = Callable[[httpx.AsyncClient, FakeClock, Inbox], Awaitable[None]]


@asynccontextmanager
async def in_process(recorder: Recorder, tmp_path: Path, inbox: Inbox, webhook: str,
                     clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    directory = tmp_path / "customers.yaml"
    directory.write_text('C-1001: {phone: "+4915100001001"}\n')
    settings = load_settings(environ={}, base={
        "mode": "dev",
        "upstream": {"url": recorder.url},
        "policies_dir": str(TEST_POLICIES),
        "directory": {"kind": "file", "path": str(directory)},
        "senders": {"sms": {"kind": "webhook", "url": webhook}},
    })
    app = create_app(settings, clock=clock)
    await app.startup()
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
            yield client
    finally:
        await app.shutdown()


def run(recorder: Recorder, tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        with running_receivers() as (inbox, _smtp, webhook):
            clock = FakeClock()
            async with in_process(recorder, tmp_path, inbox, webhook, clock) as client:
                await scenario(client, clock, inbox)

    asyncio.run(main())


async def elevate(client: httpx.AsyncClient, inbox: Inbox) -> None:
    await client.post("/anon/chat", json={"m": 1})
    before = inbox.count("+4915100001001")
    sent = await client.post("/auth/otp/send", json={"user_id": "C-1001"})
    assert sent.status_code == 202
    code = await asyncio.to_thread(inbox.wait_code, "+4915100001001", 10.0, before)
    verified = await client.post("/auth/otp/verify", json={"code": code})
    assert verified.status_code == 200, verified.text


def test_elevation_ends_after_60_minutes_even_with_activity(
    recorder: Recorder, tmp_path: Path
) -> None:
    async def scenario(client: httpx.AsyncClient, clock: FakeClock, inbox: Inbox) -> None:
        await elevate(client, inbox)
        for _ in range(5):  # active every 11 minutes: activity never extends the elevation
            clock.advance(11 * 60)
            assert (await client.get("/api/account/balance")).status_code == 200
        clock.advance(5 * 60 + 1)  # 60 min + 1 s after the verification
        late = await client.get("/api/account/balance")
        assert late.status_code == 401
        assert late.json()["error"] == "otp_required"
        assert "insufficient_user_authentication" in late.headers["www-authenticate"]
        # The visitor is anonymous again, with the same anonymous session.
        assert (await client.get("/auth/session")).json()["level"] == "anonymous"

    run(recorder, tmp_path, scenario)


def test_code_is_dead_one_second_after_its_ttl(recorder: Recorder, tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient, clock: FakeClock, inbox: Inbox) -> None:
        await client.post("/anon/chat", json={"m": 1})
        await client.post("/auth/otp/send", json={"user_id": "C-1001"})
        code = await asyncio.to_thread(inbox.wait_code, "+4915100001001")
        clock.advance(301)
        late = await client.post("/auth/otp/verify", json={"code": code})
        assert late.status_code == 401
        assert late.json()["error"] == "otp_invalid"

    run(recorder, tmp_path, scenario)


def test_idle_session_expires_after_30_minutes(recorder: Recorder, tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient, clock: FakeClock, inbox: Inbox) -> None:
        await client.post("/anon/chat", json={"m": 1})
        first = (await client.get("/auth/session")).json()["user_id"]
        clock.advance(29 * 60)
        assert (await client.get("/auth/session")).json()["user_id"] == first
        clock.advance(30 * 60 + 1)
        gone = await client.get("/auth/session")
        assert gone.status_code == 401 and gone.json()["error"] == "session_missing"
        await client.post("/anon/chat", json={"m": 2})
        assert (await client.get("/auth/session")).json()["user_id"] != first

    run(recorder, tmp_path, scenario)


def test_session_ends_after_24_hours_even_when_active(recorder: Recorder,
                                                      tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient, clock: FakeClock, inbox: Inbox) -> None:
        await client.post("/anon/chat", json={"m": 1})
        for _ in range(24 * 3):
            clock.advance(20 * 60)
            if (await client.get("/auth/session")).status_code != 200:
                break
        assert clock.now - time.time() <= 24 * 3600 + 20 * 60
        gone = await client.get("/auth/session")
        assert gone.status_code == 401

    run(recorder, tmp_path, scenario)


@pytest.mark.parametrize("cookie", ["", "x", "A" * 43, "../../etc", "a" * 500])
def test_unknown_cookie_values_are_ignored(recorder: Recorder, tmp_path: Path,
                                           cookie: str) -> None:
    async def scenario(client: httpx.AsyncClient, clock: FakeClock, inbox: Inbox) -> None:
        client.cookies.set("gw_session", cookie)
        response = await client.get("/auth/session")
        assert response.status_code == 401

    run(recorder, tmp_path, scenario)
