"""The WebSocket bridge through the real gateway process (CONTRACT §7)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.security.jwt_cases import AttackKeys, valid_token
from tests.support.procs import Gateway, Recorder


def ws_url(gateway: Gateway, path: str) -> tuple[str, str]:
    """A URL with a unique query string, and that string (the recorder's connection tag)."""
    tag = f"t={uuid.uuid4().hex}"
    return f"ws://127.0.0.1:{gateway.port}{path}?{tag}", tag


def events(recorder: Recorder, tag: str) -> list[dict[str, Any]]:
    return [e for e in recorder.ws_events() if e.get("query") == tag]


def frames(recorder: Recorder, tag: str) -> list[str]:
    return [e["text"] for e in events(recorder, tag) if e["ws"] == "frame"]


def anonymous_cookie(gateway: Gateway) -> str:
    response = httpx.post(f"{gateway.url}/anon/chat", json={"m": 1})
    return response.cookies["gw_session"]


def test_anonymous_socket_gets_its_frames_rewritten(gateway: Gateway, recorder: Recorder) -> None:
    cookie = anonymous_cookie(gateway)

    async def talk() -> str:
        url, tag = ws_url(gateway, "/ws/anon")
        headers = {"Cookie": f"gw_session={cookie}", "Origin": gateway.url}
        async with connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"sender": "mallory", "text": "hi"}))
            reply = await ws.recv()
        assert isinstance(reply, str)
        return tag

    tag = asyncio.run(talk())
    [frame] = frames(recorder, tag)
    anonymous_id = httpx.get(f"{gateway.url}/auth/session",
                             cookies={"gw_session": cookie}).json()["user_id"]
    assert json.loads(frame) == {"sender": anonymous_id, "text": "hi"}
    [handshake] = [e for e in events(recorder, tag) if e["ws"] == "handshake"]
    assert [v for n, v in handshake["headers"] if n == "x-user-id"] == [anonymous_id]
    assert all("gw_session" not in v for n, v in handshake["headers"] if n == "cookie")


def test_foreign_origin_is_refused_before_the_upgrade(gateway: Gateway,
                                                      recorder: Recorder) -> None:
    cookie = anonymous_cookie(gateway)

    async def attempt() -> InvalidStatus:
        url, _ = ws_url(gateway, "/ws/anon")
        headers = {"Cookie": f"gw_session={cookie}", "Origin": "https://evil.example"}
        with pytest.raises(InvalidStatus) as caught:
            async with connect(url, additional_headers=headers):
                pass
        return caught.value

    refused = asyncio.run(attempt())
    assert refused.response.status_code == 403
    assert json.loads(refused.response.body or b"{}")["error"] == "origin_forbidden"
    assert recorder.ws_events() == []
    # A refusal is the gateway doing its job, not a server error an operator must look at.
    assert not [line for line in gateway.log_lines() if "without completing handshake" in str(line)]


def test_bearer_subprotocol_authenticates_and_never_reaches_the_backend(
    gateway: Gateway, recorder: Recorder, keys: AttackKeys
) -> None:
    token = valid_token(keys, sub="alice")

    async def talk(offer: list[str]) -> tuple[str | None, str]:
        url, tag = ws_url(gateway, "/ws/auth")
        async with connect(url, subprotocols=offer) as ws:  # type: ignore[arg-type]
            await ws.send("hello")
            assert await ws.recv() == "echo:hello"
            return ws.subprotocol, tag

    chosen, tag = asyncio.run(talk(["bearer", token, "chat.v1"]))
    assert chosen == "chat.v1"
    [handshake] = [e for e in events(recorder, tag) if e["ws"] == "handshake"]
    assert handshake["subprotocols"] == ["chat.v1"]
    assert token not in json.dumps(handshake)
    assert [v for n, v in handshake["headers"] if n == "x-user-id"] == ["alice"]

    chosen, _ = asyncio.run(talk(["bearer", token]))
    assert chosen == "bearer"


def test_token_in_the_query_string_is_not_accepted_nor_logged(
    gateway: Gateway, recorder: Recorder, keys: AttackKeys
) -> None:
    token = valid_token(keys, sub="alice")

    async def attempt() -> int:
        url = f"ws://127.0.0.1:{gateway.port}/ws/auth?access_token={token}"
        with pytest.raises(InvalidStatus) as caught:
            async with connect(url):
                pass
        return caught.value.response.status_code

    assert asyncio.run(attempt()) == 401
    assert recorder.ws_events() == []
    time.sleep(0.5)
    assert token not in gateway.stdout_path.read_text() + gateway.stderr_path.read_text()


def test_logout_mid_socket_closes_4401_and_the_message_stays_here(
    gateway: Gateway, recorder: Recorder
) -> None:
    cookie = anonymous_cookie(gateway)

    async def talk() -> tuple[int | None, str]:
        url, tag = ws_url(gateway, "/ws/anon")
        headers = {"Cookie": f"gw_session={cookie}", "Origin": gateway.url}
        async with connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"text": "before"}))
            await ws.recv()
            async with httpx.AsyncClient(cookies={"gw_session": cookie}) as http:
                logout = await http.delete(f"{gateway.url}/auth/session")
                assert logout.status_code == 204
            await ws.send(json.dumps({"text": "after"}))
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code, tag

    code, tag = asyncio.run(talk())
    assert code == 4401
    texts = [json.loads(t)["text"] for t in frames(recorder, tag)]
    assert texts == ["before"]


def test_close_codes_pass_through_both_ways(gateway: Gateway, recorder: Recorder,
                                            keys: AttackKeys) -> None:
    token = valid_token(keys, sub="alice")

    async def backend_closes() -> tuple[int | None, str | None]:
        url, _ = ws_url(gateway, "/ws/auth")
        async with connect(url, subprotocols=["bearer", token]) as ws:  # type: ignore[list-item]
            await ws.send("close-4000")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason

    assert asyncio.run(backend_closes()) == (4000, "bye")

    async def client_closes() -> str:
        url, tag = ws_url(gateway, "/ws/auth")
        async with connect(url, subprotocols=["bearer", token]) as ws:  # type: ignore[list-item]
            await ws.send("x")
            await ws.recv()
            await ws.close(4001, "client done")
        return tag

    tag = asyncio.run(client_closes())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        closed = [e for e in events(recorder, tag) if e["ws"] == "closed"]
        if closed:
            break
        time.sleep(0.05)
    assert closed[0]["code"] == 4001


@pytest.mark.parametrize(
    ("message", "code"),
    [("not json", 1008), ("[1, 2]", 1008), (b"\x00binary", 1008), ("x" * (2 * 1024 * 1024), 1009)],
)
def test_frames_the_gateway_will_not_pass_close_the_socket(
    gateway: Gateway, recorder: Recorder, message: str | bytes, code: int
) -> None:
    cookie = anonymous_cookie(gateway)

    async def talk() -> tuple[int | None, str]:
        url, tag = ws_url(gateway, "/ws/anon")
        headers = {"Cookie": f"gw_session={cookie}", "Origin": gateway.url}
        async with connect(url, additional_headers=headers, max_size=None) as ws:
            # The gateway may close while a large frame is still being written, so the close
            # can surface on the send as well as on the next receive.
            with pytest.raises(ConnectionClosed):
                await ws.send(message)
                await ws.recv()
            return ws.close_code, tag

    close_code, tag = asyncio.run(talk())
    assert close_code == code
    assert frames(recorder, tag) == []


@pytest.mark.parametrize("path", ["/admin/ws", "/nowhere", "/ws/otp", "/public/../ws/anon"])
def test_refused_handshakes_never_reach_the_backend(gateway: Gateway, recorder: Recorder,
                                                    path: str) -> None:
    async def attempt() -> int:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"ws://127.0.0.1:{gateway.port}{path}"):
                pass
        return caught.value.response.status_code

    assert asyncio.run(attempt()) in (400, 401, 403)
    assert recorder.ws_events() == []


def test_public_socket_without_credentials_cannot_choose_a_user_id(
    gateway: Gateway, recorder: Recorder
) -> None:
    async def talk() -> str:
        url, tag = ws_url(gateway, "/ws/public")
        async with connect(url) as ws:
            await ws.send(json.dumps({"sender": "admin", "text": "hi"}))
            await ws.recv()
        return tag

    tag = asyncio.run(talk())
    assert [json.loads(t) for t in frames(recorder, tag)] == [{"text": "hi"}]
    [handshake] = [e for e in events(recorder, tag) if e["ws"] == "handshake"]
    assert [n for n, _ in handshake["headers"] if n == "x-user-id"] == []


def test_token_next_to_an_anonymous_cookie_authenticates_the_socket(
    gateway: Gateway, recorder: Recorder, keys: AttackKeys
) -> None:
    cookie = anonymous_cookie(gateway)
    token = valid_token(keys, sub="alice")

    async def talk() -> str:
        url, tag = ws_url(gateway, "/ws/auth")
        headers = {"Cookie": f"gw_session={cookie}", "Origin": gateway.url}
        async with connect(url, additional_headers=headers,
                           subprotocols=["bearer", token]) as ws:  # type: ignore[list-item]
            await ws.send("hello")
            assert await ws.recv() == "echo:hello"
        return tag

    tag = asyncio.run(talk())
    [handshake] = [e for e in events(recorder, tag) if e["ws"] == "handshake"]
    assert [v for n, v in handshake["headers"] if n == "x-user-id"] == ["alice"]
