"""GDPR: find everything linked to a user, then forget it (CONTRACT §9, ``gateway users``).

The user's history is made through the real endpoints: an anonymous chat, a login that
upgrades the session (linking the anonymous id), an OTP step-up, and a second code left
pending. On the memory store the data lives inside the gateway process: the in-process API
reaches it, and so does the CLI, through the running gateway's admin listener; on Redis the
CLI reads the store itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import users
from gateway.app import create_app
from gateway.settings import load_settings
from tests.conftest import gateway_env
from tests.security.jwt_cases import AttackKeys, valid_token
from tests.support.delivery import Inbox, running_receivers
from tests.support.procs import ROOT, Recorder, start_gateway, stop
from tests.support.redis import RedisTarget
from tests.support.stack import (
    OTP_HASH_ENV,
    OTP_HASH_KEY,
    cookie_of,
    otp_config,
    redis_env,
    seen_header,
    with_cookie,
)


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[Inbox, int, str]]:
    with running_receivers() as found:
        yield found


async def make_history(
    request: Callable[..., Awaitable[httpx.Response]], inbox: Inbox, recorder: Recorder,
    keys: AttackKeys, user: str,
) -> tuple[str, str]:
    """Chat anonymously, log in, step up, ask for another code; (anonymous id, last cookie)."""
    recorder.clear()
    chat = await request("POST", "/anon/chat", json={"message": "hello"})
    anonymous_id = seen_header(recorder.requests()[-1], "x-user-id")[0]
    bearer = {"Authorization": f"Bearer {valid_token(keys, sub=user)}"}
    upgraded = await request("GET", "/api/x", headers=with_cookie(cookie_of(chat), **bearer))
    assert seen_header(recorder.requests()[-1], "x-anonymous-id") == [anonymous_id]
    cookie = cookie_of(upgraded)

    async def send_code() -> str:
        address = f"{user}@example.com"
        before = inbox.count(address)
        sent = await request("POST", "/auth/otp/send", json={}, headers=with_cookie(cookie))
        assert sent.status_code == 202, sent.text
        return await asyncio.to_thread(inbox.wait_code, address, 10.0, before)

    verified = await request("POST", "/auth/otp/verify", json={"code": await send_code()},
                             headers=with_cookie(cookie))
    assert verified.status_code == 200, verified.text
    cookie = cookie_of(verified)
    await send_code()  # left pending on the elevated session
    return anonymous_id, cookie


def check_shown(shown: dict[str, Any], user: str, anonymous_id: str) -> None:
    assert shown["user_id"] == user and shown["anonymous_ids"] == [anonymous_id]
    [session] = shown["sessions"]["live"]
    assert shown["sessions"]["count"] == 1
    assert session["level"] == "otp" and session["anonymous_id"] == anonymous_id
    assert session["created"] <= session["last_seen"] < session["otp_expires_at"]
    [pending] = shown["otp"]["pending"]
    assert pending["channel"] == "email" and pending["attempts"] == 0
    assert shown["otp"]["sends_this_hour"] == 2
    assert "cookie" not in json.dumps(shown).lower()


def check_empty(shown: dict[str, Any], user: str) -> None:
    assert shown["user_id"] == user and shown["anonymous_ids"] == []
    assert shown["sessions"] == {"count": 0, "live": []}
    assert shown["otp"] == {"pending": [], "failures_this_hour": 0, "sends_this_hour": 0,
                            "resend_in": 0}


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_show_and_forget_in_process(
    backend: str, request: pytest.FixtureRequest, keys: AttackKeys, recorder: Recorder,
    receivers: tuple[Inbox, int, str], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    inbox, smtp_port, webhook_url = receivers
    user = f"gdpr-{1 if backend == 'memory' else 2}"
    # No resend cooldown, so the test can leave a second code pending right away.
    config = otp_config(keys, tmp_path, recorder.url, smtp_port, webhook_url)
    config["otp"]["resend_cooldown"] = 0
    env = {**gateway_env(keys), OTP_HASH_ENV: OTP_HASH_KEY}
    if backend == "redis":
        target: RedisTarget = request.getfixturevalue("redis_target")
        env = redis_env(keys, target, target.fresh_prefix("gdpr"))
    settings = load_settings(environ=env, base=config)

    async def scenario() -> None:
        app = create_app(settings)
        await app.startup()
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as c:
                anonymous_id, cookie = await make_history(c.request, inbox, recorder, keys, user)
                assert app.otp is not None
                check_shown(await users.show(app.store, user, otp=app.otp.keys), user,
                            anonymous_id)
                summary = await users.forget(app.store, user, otp=app.otp.keys)
                assert summary["sessions_deleted"] == 1 and summary["sessions_linked"] == 2
                assert summary["anonymous_ids_unlinked"] == 1
                assert summary["otp_challenges_deleted"] == 1
                assert summary["otp_counters_deleted"] >= 1
                gone = await c.get("/auth/session", headers=with_cookie(cookie))
                assert gone.status_code == 401 and gone.json()["error"] == "session_missing"
                check_empty(await users.show(app.store, user, otp=app.otp.keys), user)
        finally:
            await app.shutdown()

    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        asyncio.run(scenario())
    [event] = [r.event for r in caplog.records if r.getMessage() == "forget"]  # type: ignore[attr-defined]
    assert event["sessions_deleted"] == 1 and user not in json.dumps(event)


def gateway_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT,
                          env={**child_env, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_users_cli(
    keys: AttackKeys, recorder: Recorder, receivers: tuple[Inbox, int, str], tmp_path: Path,
    request: pytest.FixtureRequest, backend: str,
) -> None:
    """On Redis the CLI reads the store; on memory it asks the running gateway's admin port."""
    inbox, smtp_port, webhook_url = receivers
    if backend == "redis":
        target: RedisTarget = request.getfixturevalue("redis_target")
        env = redis_env(keys, target, target.fresh_prefix("gdpr-cli"))
    else:
        env = {**gateway_env(keys), OTP_HASH_ENV: OTP_HASH_KEY}
    config = otp_config(keys, tmp_path, recorder.url, smtp_port, webhook_url)
    config["otp"]["resend_cooldown"] = 0
    gateway = start_gateway(tmp_path, config, env)
    try:
        async def history() -> tuple[str, str]:
            async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
                return await make_history(client.request, inbox, recorder, keys, "gdpr-cli")

        anonymous_id, cookie = asyncio.run(history())
        config_file = str(tmp_path / "gateway.yaml")
        shown = gateway_cli(["--config", config_file, "users", "show", "gdpr-cli"], env)
        assert shown.returncode == 0, shown.stderr
        check_shown(json.loads(shown.stdout), "gdpr-cli", anonymous_id)

        forgotten = gateway_cli(["--config", config_file, "users", "forget", "gdpr-cli"], env)
        assert forgotten.returncode == 0, forgotten.stderr
        summary = json.loads(forgotten.stdout)
        assert summary["sessions_deleted"] == 1 and summary["otp_challenges_deleted"] == 1
        if backend == "redis":
            # On memory the "forget" audit event is written by the gateway process itself.
            audit = [json.loads(line) for line in forgotten.stderr.splitlines()]
            assert [line["audit"] for line in audit if "audit" in line] == ["forget"]

        gone = httpx.get(f"{gateway.url}/auth/session", headers=with_cookie(cookie))
        assert gone.status_code == 401
        again = gateway_cli(["--config", config_file, "users", "show", "gdpr-cli"], env)
        check_empty(json.loads(again.stdout), "gdpr-cli")
        assert cookie not in shown.stdout + forgotten.stdout + forgotten.stderr
    finally:
        stop(gateway.proc)


def test_users_cli_on_memory_without_a_running_gateway_says_so(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("admin: {port: 1}\n")
    result = gateway_cli(["--config", str(config), "users", "forget", "alice"], {})
    assert result.returncode == 1
    assert "asks it through its admin listener at http://127.0.0.1:1" in result.stderr
    assert result.stdout == ""
