"""Per-message re-authorization on an injectable clock: the gateway served in-process by
uvicorn on a real port, the backend a real recorder process, time moved without sleeping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.app import create_app
from gateway.server import uvicorn_config
from gateway.settings import load_settings
from tests.conftest import TEST_POLICIES
from tests.integration.test_clock import FakeClock
from tests.support.delivery import Inbox, running_receivers
from tests.support.procs import Recorder, free_port

Scenario = Callable[[str, httpx.AsyncClient, FakeClock, Inbox], Awaitable[None]]


def serve_and_run(recorder: Recorder, tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        with running_receivers() as (inbox, _smtp, webhook):
            directory = tmp_path / "customers.yaml"
            directory.write_text('C-1001: {phone: "+4915100001001"}\n')
            settings = load_settings(environ={}, base={
                "mode": "dev",
                "upstream": {"url": recorder.url},
                "policies_dir": str(TEST_POLICIES),
                "directory": {"kind": "file", "path": str(directory)},
                "senders": {"sms": {"kind": "webhook", "url": webhook}},
            })
            clock = FakeClock()
            app = create_app(settings, clock=clock)
            port = free_port()
            server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port,
                                                   log_config=None))
            task = asyncio.create_task(server.serve())
            for _ in range(500):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.02)
            assert server.started, "the in-process gateway did not start"
            base = f"http://127.0.0.1:{port}"
            try:
                async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                    await scenario(base, client, clock, inbox)
            finally:
                server.should_exit = True
                await task

    asyncio.run(main())


async def elevated_cookie(client: httpx.AsyncClient, inbox: Inbox) -> str:
    await client.post("/anon/chat", json={"m": 1})
    before = inbox.count("+4915100001001")
    await client.post("/auth/otp/send", json={"user_id": "C-1001"})
    code = await asyncio.to_thread(inbox.wait_code, "+4915100001001", 10.0, before)
    verified = await client.post("/auth/otp/verify", json={"code": code})
    assert verified.status_code == 200
    return client.cookies["gw_session"]


def test_elevation_expiry_closes_4403_before_the_message_passes(
    recorder: Recorder, tmp_path: Path
) -> None:
    async def scenario(base: str, client: httpx.AsyncClient, clock: FakeClock,
                       inbox: Inbox) -> None:
        cookie = await elevated_cookie(client, inbox)
        url = base.replace("http", "ws") + "/ws/otp?t=elevation"
        headers = {"Cookie": f"gw_session={cookie}", "Origin": base}
        async with connect(url, additional_headers=headers) as ws:
            for _ in range(3):  # active every 20 minutes: the session stays alive
                await ws.send("while elevated")
                assert await ws.recv() == "echo:while elevated"
                clock.advance(20 * 60)
            clock.advance(1)  # 60 min + 1 s after the verification
            await ws.send("after expiry")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4403

    serve_and_run(recorder, tmp_path, scenario)
    texts = [e["text"] for e in recorder.ws_events()
             if e.get("query") == "t=elevation" and e["ws"] == "frame"]
    assert texts == ["while elevated"] * 3


def test_idle_expiry_closes_4401(recorder: Recorder, tmp_path: Path) -> None:
    async def scenario(base: str, client: httpx.AsyncClient, clock: FakeClock,
                       inbox: Inbox) -> None:
        await client.post("/anon/chat", json={"m": 1})
        cookie = client.cookies["gw_session"]
        url = base.replace("http", "ws") + "/ws/anon?t=idle"
        headers = {"Cookie": f"gw_session={cookie}", "Origin": base}
        async with connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"text": "one"}))
            await ws.recv()
            clock.advance(31 * 60)
            await ws.send(json.dumps({"text": "two"}))
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4401

    serve_and_run(recorder, tmp_path, scenario)
    texts = [json.loads(e["text"])["text"] for e in recorder.ws_events()
             if e.get("query") == "t=idle" and e["ws"] == "frame"]
    assert texts == ["one"]
