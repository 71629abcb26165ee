"""Request lines name users as ``log.user_id`` says: salted hash (default), plain, or not."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from gateway.observe import salted_user_hash
from tests.conftest import HS_SECRET_ENV, gateway_config
from tests.security.jwt_cases import AttackKeys, valid_token
from tests.support.ops import in_process
from tests.support.procs import Recorder

SALT = "pepper-pepper-pepper-pepper"


def request_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if '"type":"request"' in line]


def run(keys: AttackKeys, recorder: Recorder, tmp_path: Path, log: dict[str, str]) -> None:
    from gateway.settings import load_settings

    config = gateway_config(keys, tmp_path, recorder.url, log=log)
    settings = load_settings(environ={HS_SECRET_ENV: keys.hs_secret.decode(), "SALT": SALT},
                             base=config)
    token = valid_token(keys, sub="alice")

    async def scenario() -> None:
        async with in_process(settings) as (_app, client):
            await client.get("/public/x")
            await client.get("/api/x", headers={"Authorization": f"Bearer {token}"})
            await client.post("/auth/session", headers={"Authorization": f"Bearer {token}"})

    asyncio.run(scenario())


@pytest.mark.parametrize(("mode", "expected"), [
    ("hash", salted_user_hash(SALT.encode(), "alice")), ("plain", "alice"), ("none", "-")])
def test_user_field_follows_the_setting_in_request_lines_and_audit_events(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, mode: str, expected: str,
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        run(keys, recorder, tmp_path, {"user_id": mode, "user_hash_salt_env": "SALT"})
    public, api, session = request_lines(capsys.readouterr().out)
    assert api["user"] == expected
    assert public["user"] is None  # no identity, no user
    assert session["rule"] == "/auth"
    [login] = [r for r in caplog.records if r.getMessage() == "login"]
    assert login.event["user"] == expected  # type: ignore[attr-defined]
    if mode != "plain":
        assert "alice" not in json.dumps([api, session, public])
