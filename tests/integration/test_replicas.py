"""Two gateway processes on two ports sharing one Redis, as replicas behind a load balancer.

Nothing is shared between A and B but Redis (and the configuration, as in a deployment): a
code sent through one is verified through the other, a logout on one is seen by the next
request on the other, and the attempt limit holds across both under concurrency.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import gateway_env
from tests.security.jwt_cases import AttackKeys, valid_token
from tests.support.delivery import Inbox, running_receivers
from tests.support.ops import sample
from tests.support.procs import Gateway, Recorder, start_gateway, stop
from tests.support.redis import RedisTarget
from tests.support.stack import (
    COOKIE,
    OTP_HASH_ENV,
    cookie_of,
    otp_config,
    redis_env,
    seen_header,
    with_cookie,
)

Pair = tuple[Gateway, Gateway, Inbox]


@pytest.fixture(scope="module")
def pair(
    keys: AttackKeys, recorder: Recorder, redis_target: RedisTarget,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    env = redis_env(keys, redis_target, redis_target.fresh_prefix("replicas"))
    with running_receivers() as (inbox, smtp_port, webhook_url):
        gateways = []
        try:
            for name in ("a", "b"):
                workdir = tmp_path_factory.mktemp(f"replica-{name}")
                config = otp_config(keys, workdir, recorder.url, smtp_port, webhook_url)
                gateways.append(start_gateway(workdir, config, env))
            yield gateways[0], gateways[1], inbox
        finally:
            for gateway in gateways:
                stop(gateway.proc)


def test_code_sent_through_a_is_verified_through_b(pair: Pair, recorder: Recorder) -> None:
    a, b, inbox = pair
    chat = httpx.post(f"{a.url}/anon/chat", json={"message": "my balance?"})
    assert chat.status_code == 200
    cookie = cookie_of(chat)
    before = inbox.count("+4915100001001")
    sent = httpx.post(f"{a.url}/auth/otp/send", json={"user_id": "C-1001"},
                      headers=with_cookie(cookie))
    assert sent.status_code == 202, sent.text
    code = inbox.wait_code("+4915100001001", after=before)

    verified = httpx.post(f"{b.url}/auth/otp/verify", json={"code": code},
                          headers=with_cookie(cookie))
    assert verified.status_code == 200, verified.text
    assert verified.json()["user_id"] == "C-1001" and verified.json()["level"] == "otp"
    elevated = cookie_of(verified)

    for gateway in (a, b):
        recorder.clear()
        balance = httpx.get(f"{gateway.url}/api/account/balance", headers=with_cookie(elevated))
        assert balance.status_code == 200
        [seen] = recorder.requests()
        assert seen_header(seen, "x-user-id") == ["C-1001"]
        assert seen_header(seen, "x-auth-level") == ["otp"]
    # The code was single use across both: replaying it through A fails.
    replay = httpx.post(f"{a.url}/auth/otp/verify", json={"code": code},
                        headers=with_cookie(elevated))
    assert replay.status_code == 401 and replay.json()["error"] == "otp_invalid"


def test_logout_through_a_is_refused_on_b_at_once(
    pair: Pair, recorder: Recorder, keys: AttackKeys
) -> None:
    a, b, _ = pair
    login = httpx.post(f"{a.url}/auth/session",
                       headers={"Authorization": f"Bearer {valid_token(keys, sub='alice')}"})
    assert login.status_code == 200
    cookie = cookie_of(login)
    for gateway in (a, b):
        shown = httpx.get(f"{gateway.url}/auth/session", headers=with_cookie(cookie))
        assert shown.status_code == 200 and shown.json()["user_id"] == "alice"
        assert httpx.get(f"{gateway.url}/api/x", headers=with_cookie(cookie)).status_code == 200

    logout = httpx.delete(f"{a.url}/auth/session", headers=with_cookie(cookie))
    assert logout.status_code == 204
    recorder.clear()
    # The very next request, on the other replica: no cache anywhere keeps the session alive.
    refused = httpx.get(f"{b.url}/api/x", headers=with_cookie(cookie))
    assert refused.status_code == 401 and refused.json()["error"] == "token_missing"
    gone = httpx.get(f"{b.url}/auth/session", headers=with_cookie(cookie))
    assert gone.status_code == 401 and gone.json()["error"] == "session_missing"
    assert recorder.requests() == []


def test_logout_through_a_closes_a_socket_on_b_at_its_next_message(
    pair: Pair, recorder: Recorder
) -> None:
    """B re-checks each message against its invalidated copy of the session (Redis tracking)."""
    a, b, _ = pair
    cookie = cookie_of(httpx.post(f"{a.url}/anon/chat", json={"m": 1}))
    tag = f"t={uuid.uuid4().hex}"

    before = _cache_metrics(b)

    async def talk() -> int | None:
        url = f"ws://127.0.0.1:{b.port}/ws/anon?{tag}"
        headers = {"Cookie": f"{COOKIE}={cookie}", "Origin": b.url}
        async with connect(url, additional_headers=headers) as ws:
            for text in ("one", "two", "three"):  # the first reads Redis, the others the copy
                await ws.send(json.dumps({"text": text}))
                await ws.recv()
            async with httpx.AsyncClient() as http:
                during = await _cache_metrics_async(http, b)
                assert _delta(before, during) == {"hits": 2, "misses": 1, "entries": 1}
                logout = await http.delete(f"{a.url}/auth/session", headers=with_cookie(cookie))
                assert logout.status_code == 204
            await ws.send(json.dumps({"text": "after"}))
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert asyncio.run(talk()) == 4401
    # The logout's invalidation emptied B's copy: the last message read Redis and found nothing.
    assert _delta(before, _cache_metrics(b)) == {"hits": 2, "misses": 2, "entries": 0}
    texts = [json.loads(e["text"])["text"] for e in recorder.ws_events()
             if e.get("query") == tag and e["ws"] == "frame"]
    assert texts == ["one", "two", "three"]


CACHE_METRICS = ("hits_total", "misses_total", "entries")


def _parse_cache_metrics(text: str) -> dict[str, float]:
    return {name.removesuffix("_total"): sample(text, f"gateway_websocket_session_cache_{name}")
            for name in CACHE_METRICS}


def _cache_metrics(gateway: Gateway) -> dict[str, float]:
    return _parse_cache_metrics(httpx.get(f"{gateway.admin_url}/metrics").text)


async def _cache_metrics_async(http: httpx.AsyncClient, gateway: Gateway) -> dict[str, float]:
    return _parse_cache_metrics((await http.get(f"{gateway.admin_url}/metrics")).text)


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """How far the counters moved since ``before``; the entries gauge as it is now."""
    return {name: after[name] - before[name] if name != "entries" else after[name]
            for name in after}


def _evaluations(gateways: tuple[Gateway, ...]) -> int:
    return sum(1 for gateway in gateways for line in gateway.log_lines()
               if line.get("audit") in ("otp_failed", "otp_locked"))


@pytest.mark.slow
def test_attempt_limit_is_shared_across_replicas_under_concurrency(pair: Pair) -> None:
    a, b, inbox = pair
    chat = httpx.post(f"{a.url}/anon/chat", json={"message": "hi"})
    cookie = cookie_of(chat)
    before = inbox.count("race-1@example.com")
    sent = httpx.post(f"{b.url}/auth/otp/send", json={"user_id": "race-1"},
                      headers=with_cookie(cookie))
    assert sent.status_code == 202
    code = inbox.wait_code("race-1@example.com", after=before)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    time.sleep(0.3)  # audit lines of earlier tests are written by now
    evaluated_before = _evaluations((a, b))

    async def race() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            return await asyncio.gather(*(
                client.post(f"{gateway.url}/auth/otp/verify", json={"code": wrong},
                            headers=with_cookie(cookie))
                for gateway in [a, b] * 50))

    answers = asyncio.run(race())
    assert {answer.status_code for answer in answers} <= {401, 429}
    assert any(answer.status_code == 429 for answer in answers)
    # Only an evaluated wrong code earns "attempts_left"; the 5th evaluated one locks instead.
    assert sum("attempts_left" in answer.json() for answer in answers) <= 4
    time.sleep(0.5)
    assert 1 <= _evaluations((a, b)) - evaluated_before <= 5
    # The challenge is burned on both replicas: even the right code fails now.
    late = httpx.post(f"{a.url}/auth/otp/verify", json={"code": code}, headers=with_cookie(cookie))
    assert late.status_code in (401, 429)


def test_workers_share_sessions_through_redis(
    keys: AttackKeys, recorder: Recorder, redis_target: RedisTarget, tmp_path: Path
) -> None:
    env = redis_env(keys, redis_target, redis_target.fresh_prefix("workers"))
    config = otp_config(keys, tmp_path, recorder.url, 1, "http://127.0.0.1:1/sms", workers=2)
    gateway = start_gateway(tmp_path, config, env)
    try:
        login = httpx.post(f"{gateway.url}/auth/session",
                           headers={"Authorization": f"Bearer {valid_token(keys, sub='alice')}"})
        assert login.status_code == 200, login.text
        cookie = cookie_of(login)
        with httpx.Client(base_url=gateway.url, headers=with_cookie(cookie)) as client:
            # New connections are spread over the workers; every one knows the session.
            answers = [client.get("/auth/session", headers={"Connection": "close"})
                       for _ in range(20)]
        assert {answer.status_code for answer in answers} == {200}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            started = [line for line in gateway.log_lines()
                       if str(line.get("message", "")).startswith("Started server process")]
            if len(started) == 2:
                break
            time.sleep(0.1)
        assert len({line["message"] for line in started}) == 2
    finally:
        stop(gateway.proc)


def test_memory_store_refuses_several_workers(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> None:
    config = otp_config(keys, tmp_path, recorder.url, 1, "http://127.0.0.1:1/sms", workers=3)
    # No GATEWAY_STORE_URL: the default memory:// store.
    env = {**gateway_env(keys), OTP_HASH_ENV: "k" * 32}
    gateway = start_gateway(tmp_path, config, env, expect_failure=True)
    assert gateway.proc.wait(timeout=30) == 2
    assert ("option 'workers' must be 1 with the memory store but it's configured as '3': the "
            "memory store keeps sessions inside one process; with 3 workers use store.url: "
            "redis://…") in gateway.stderr_path.read_text()
