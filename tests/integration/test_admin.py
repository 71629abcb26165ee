"""The admin listener of a real gateway process: health, readiness, metrics, and where not."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path

import httpx
import pytest

from tests.conftest import gateway_config, gateway_env
from tests.security.jwt_cases import AttackKeys
from tests.support.ops import sample
from tests.support.procs import Gateway, Recorder, free_port, start_gateway, stop


def test_health_and_readiness_on_the_admin_port(gateway: Gateway) -> None:
    health = httpx.get(f"{gateway.admin_url}/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.admin_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready"}
    assert httpx.get(f"{gateway.admin_url}/api/things").status_code == 404
    assert httpx.post(f"{gateway.admin_url}/metrics").status_code == 405


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_admin_paths_are_ordinary_policy_paths_on_the_public_port(
    gateway: Gateway, recorder: Recorder, path: str
) -> None:
    # No rule matches them in the test policies, so the default (deny) decides.
    answer = httpx.get(f"{gateway.url}{path}")
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"
    assert "gateway_requests_total" not in answer.text
    assert recorder.requests() == []


def test_metrics_on_the_admin_port_count_the_public_traffic(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    def count() -> float:
        text = httpx.get(f"{gateway.admin_url}/metrics").text
        return sample(text, "gateway_requests_total", rule="api", decision="allow", status="200")

    answer = httpx.get(f"{gateway.admin_url}/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    before = count()
    for _ in range(3):
        httpx.get(f"{gateway.url}/api/things", headers={"Authorization": f"Bearer {token}"})
    assert count() - before == 3


def test_websocket_connections_are_counted_when_opened_and_by_close_code(
    gateway: Gateway, recorder: Recorder
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    def counts() -> tuple[float, float, float]:
        text = httpx.get(f"{gateway.admin_url}/metrics").text
        return (sample(text, "gateway_websocket_opened_total"),
                sample(text, "gateway_websocket_closed_total", code="1000"),
                sample(text, "gateway_websocket_closed_total", code="4401"))

    cookie = httpx.post(f"{gateway.url}/anon/chat", json={"m": 1}).cookies["gw_session"]
    headers = {"Cookie": f"gw_session={cookie}", "Origin": gateway.url}
    url = f"ws://127.0.0.1:{gateway.port}/ws/anon"

    async def talk() -> None:
        async with connect(url, additional_headers=headers) as ws:  # closed by us: 1000
            await ws.send(json.dumps({"text": "hi"}))
            await ws.recv()
        async with connect(url, additional_headers=headers) as ws:
            httpx.delete(f"{gateway.url}/auth/session", cookies={"gw_session": cookie},
                         headers={"Origin": gateway.url})
            await ws.send(json.dumps({"text": "after logout"}))
            try:
                await ws.recv()
            except ConnectionClosed as closed:  # the gateway closes: 4401
                assert closed.rcvd is not None and closed.rcvd.code == 4401

    before = counts()
    asyncio.run(talk())
    after = counts()
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1]


def test_request_lines_name_the_user_by_a_salted_hash(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    import time

    httpx.get(f"{gateway.url}/api/user-line", headers={"Authorization": f"Bearer {token}"})
    time.sleep(0.5)  # request lines are written in batches
    [line] = [x for x in gateway.log_lines() if x.get("path") == "/api/user-line"]
    assert re.fullmatch(r"[0-9a-f]{16}", line["user"])
    assert line["user"] != "alice"
    assert line["ms"] >= line["upstream_ms"] >= 0


def test_readyz_is_503_with_the_problem_while_the_backend_is_down(
    keys: AttackKeys, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    gw = start_gateway(tmp_path, gateway_config(keys, tmp_path, nobody), gateway_env(keys))
    try:
        ready = httpx.get(f"{gw.admin_url}/readyz")
        assert ready.status_code == 503
        [problem] = ready.json()["problems"]
        assert problem.startswith("upstream: cannot connect to 127.0.0.1:")
        assert httpx.get(f"{gw.admin_url}/healthz").status_code == 200  # alive all the same
    finally:
        stop(gw.proc)


def test_a_taken_admin_port_stops_the_start(keys: AttackKeys, recorder: Recorder,
                                            tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = gateway_config(keys, tmp_path, recorder.url,
                                admin={"host": "127.0.0.1", "port": port})
        gw = start_gateway(tmp_path, config, gateway_env(keys), expect_failure=True)
        try:
            assert gw.proc.wait(timeout=20) != 0
        finally:
            stop(gw.proc)
    assert "address already in use" in gw.stderr_path.read_text().lower()


def test_admin_listener_can_be_turned_off(keys: AttackKeys, recorder: Recorder,
                                          tmp_path: Path) -> None:
    port = free_port()
    config = gateway_config(keys, tmp_path, recorder.url,
                            admin={"enabled": False, "port": port})
    gw = start_gateway(tmp_path, config, gateway_env(keys))
    try:
        assert httpx.get(f"{gw.url}/public/x").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        stop(gw.proc)


def test_readyz_lists_every_problem_in_process(keys: AttackKeys, tmp_path: Path) -> None:
    from gateway.admin import AdminApp
    from gateway.app import create_app
    from gateway.errors import StoreUnavailable
    from gateway.stores.memory import MemoryStore
    from tests.support.ops import settings_for

    class DownStore(MemoryStore):
        async def ping(self) -> None:
            raise StoreUnavailable()

    port = free_port()
    settings = settings_for(keys, tmp_path, f"http://127.0.0.1:{port}")

    async def scenario() -> httpx.Response:
        app = create_app(settings, store=DownStore())
        transport = httpx.ASGITransport(app=AdminApp(app, serving=lambda: False))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return await client.get("/readyz")

    answer = asyncio.run(scenario())
    assert answer.status_code == 503
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["problems"] == [
        "gateway: the public listener is not serving (starting or shutting down)",
        "store: the session store is unreachable",
        f"upstream: cannot connect to 127.0.0.1:{port} (Connection refused)",
    ]
