"""A gateway process on Redis: sessions outlive the process, and an outage is a clean 503.

The outage is made with a gate (a TCP forwarder the test cuts and restores) in front of the
test Redis, so the test never stops a Redis that something else may be using.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.jwt_cases import AttackKeys, valid_token
from tests.support.procs import Gateway, Recorder, start_gateway, stop
from tests.support.redis import RedisGate, RedisTarget
from tests.support.stack import cookie_of, otp_config, redis_env, seen_header, with_cookie

FAKE_COOKIE = "A" * 43  # what a browser sends back: the gateway must look it up


def test_sessions_survive_a_restart(
    keys: AttackKeys, recorder: Recorder, redis_target: RedisTarget, tmp_path: Path
) -> None:
    env = redis_env(keys, redis_target, redis_target.fresh_prefix("restart"))
    config = otp_config(keys, tmp_path, recorder.url, 1, "http://127.0.0.1:1/sms")
    first = start_gateway(tmp_path / "first", config, env)
    try:
        chat = httpx.post(f"{first.url}/anon/chat", json={"message": "hi"})
        anonymous_cookie = cookie_of(chat)
        anonymous_id = seen_header(recorder.requests()[-1], "x-user-id")[0]
        login = httpx.post(f"{first.url}/auth/session",
                           headers={"Authorization": f"Bearer {valid_token(keys, sub='alice')}"})
        user_cookie = cookie_of(login)
    finally:
        stop(first.proc)

    second = start_gateway(tmp_path / "second", config, env)
    try:
        shown = httpx.get(f"{second.url}/auth/session", headers=with_cookie(user_cookie))
        assert shown.status_code == 200 and shown.json()["user_id"] == "alice"
        recorder.clear()
        again = httpx.post(f"{second.url}/anon/chat", json={"message": "still me"},
                           headers=with_cookie(anonymous_cookie))
        assert again.status_code == 200 and "set-cookie" not in again.headers
        assert seen_header(recorder.requests()[-1], "x-user-id") == [anonymous_id]
    finally:
        stop(second.proc)


@pytest.fixture
def gated(
    keys: AttackKeys, recorder: Recorder, redis_target: RedisTarget, tmp_path: Path
) -> Iterator[tuple[Gateway, RedisGate, str]]:
    gate = RedisGate(redis_target.url)
    env = {**redis_env(keys, redis_target, redis_target.fresh_prefix("gate")),
           "GATEWAY_STORE_URL": gate.url}
    config = otp_config(keys, tmp_path, recorder.url, 1, "http://127.0.0.1:1/sms")
    # The gate is closed: the gateway starts while its Redis is unreachable.
    gateway = start_gateway(tmp_path, config, env)
    try:
        yield gateway, gate, f"http://127.0.0.1:{config['admin']['port']}"
    finally:
        stop(gateway.proc)
        gate.cut()


def _store_requests(keys: AttackKeys, cookie: str) -> list[tuple[str, str, dict[str, object]]]:
    """(method, path, httpx options) of requests that cannot be answered without the store."""
    bearer = {"Authorization": f"Bearer {valid_token(keys, sub='alice')}"}
    return [
        ("POST", "/anon/chat", {"json": {"m": 1}}),  # creates an anonymous session
        ("GET", "/api/x", {"headers": with_cookie(cookie)}),
        ("GET", "/api/account/balance", {"headers": with_cookie(cookie)}),
        ("GET", "/api/x", {"headers": with_cookie(cookie, **bearer)}),
        ("GET", "/auth/session", {"headers": with_cookie(cookie)}),
        ("POST", "/auth/session", {"headers": bearer}),
        ("DELETE", "/auth/session", {"headers": with_cookie(cookie)}),
        ("POST", "/auth/otp/send", {"json": {"user_id": "C-1001"}}),
        ("POST", "/auth/otp/verify", {"json": {"code": "123456"},
                                      "headers": with_cookie(cookie)}),
    ]


def _assert_all_503(gateway: Gateway, keys: AttackKeys, cookie: str) -> None:
    for method, path, options in _store_requests(keys, cookie):
        response = httpx.request(method, f"{gateway.url}{path}", **options)  # type: ignore[arg-type]
        assert response.status_code == 503, (method, path, response.text)
        assert response.json()["error"] == "store_unavailable", (method, path)
        assert response.headers["retry-after"] == "5"
        assert "set-cookie" not in response.headers


@pytest.mark.slow
def test_redis_outage_is_a_clean_503_and_recovery_needs_no_restart(
    gated: tuple[Gateway, RedisGate, str], keys: AttackKeys, recorder: Recorder
) -> None:
    gateway, gate, admin = gated
    assert gateway.proc.poll() is None  # started although Redis was unreachable
    ready = httpx.get(f"{admin}/readyz")
    assert ready.status_code == 503
    assert "store: the session store is unreachable" in ready.json()["problems"]

    _assert_all_503(gateway, keys, FAKE_COOKIE)
    # Public routes need no identity, so the outage costs them nothing.
    assert httpx.get(f"{gateway.url}/public/info").status_code == 200
    # A bearer token alone is verified without the store (no session to read): it passes.
    bearer = {"Authorization": f"Bearer {valid_token(keys, sub='bob')}"}
    assert httpx.get(f"{gateway.url}/api/x", headers=bearer).status_code == 200
    assert [r["path"] for r in recorder.requests()] == ["/public/info", "/api/x"]

    gate.open()  # Redis is back: the same process serves sessions, no restart needed
    login = httpx.post(f"{gateway.url}/auth/session",
                       headers={"Authorization": f"Bearer {valid_token(keys, sub='alice')}"})
    assert login.status_code == 200, login.text
    cookie = cookie_of(login)
    assert httpx.get(f"{admin}/readyz").status_code == 200

    gate.cut()  # and gone again, mid-life, with connections in the pool
    recorder.clear()
    _assert_all_503(gateway, keys, cookie)
    assert recorder.requests() == []

    gate.open()
    shown = httpx.get(f"{gateway.url}/auth/session", headers=with_cookie(cookie))
    assert shown.status_code == 200 and shown.json()["user_id"] == "alice"

    lines = gateway.log_lines()
    assert not [line for line in lines if line.get("status") == 500]
    assert not [line for line in lines if "unhandled" in str(line.get("message", ""))]
    messages = [line.get("message") for line in lines]
    assert "session store unreachable" in messages
    assert "session store reachable again" in messages
    assert "redis://127.0.0.1" in str(lines)  # where, without any password
