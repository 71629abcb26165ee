"""The ``gateway`` command as users run it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.procs import ROOT, free_port, stop, wait_for_port


def gateway_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_policies_check_passes_on_the_shipped_policies() -> None:
    result = gateway_cli("policies", "check", "policies")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK:")


def test_policies_check_fails_with_exact_messages_on_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", broken)
    text = (broken / "default.yaml").read_text()
    text = text.replace("require: otp", "require: admin", 1)
    (broken / "default.yaml").write_text(text)
    (broken / "zz-extra.yaml").write_text(
        "rules:\n  - name: typo\n    match: {path: api/x, methods: [FETCH]}\n    require: public\n"
    )
    result = gateway_cli("policies", "check", str(broken))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert any(
        line.startswith("default.yaml: rule #")
        and "option 'require' must be one of 'public', 'anonymous', 'authenticated', 'otp', "
        "'deny' but it's configured as 'admin'"
        in line
        for line in lines
    ), lines
    assert any(
        line.startswith("zz-extra.yaml: rule #1 ('typo'): option 'match.path'") for line in lines
    ), lines
    assert any(
        line.startswith("zz-extra.yaml: rule #1 ('typo'): option 'match.methods'") for line in lines
    ), lines


def test_policies_explain_names_the_rule_and_the_decision() -> None:
    result = gateway_cli(
        "policies",
        "explain",
        "GET",
        "/api/account/balance",
        "--level",
        "authenticated",
        "--dir",
        "policies",
    )
    assert result.returncode == 0, result.stderr
    assert "otp_required" in result.stdout
    assert "/api/account/**" in result.stdout
    bad = gateway_cli("policies", "explain", "GET", "/public/../admin", "--dir", "policies")
    assert "refuse 400 bad_request" in bad.stdout


def test_token_mint_signs_with_the_configured_key(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "jwt:\n  issuers:\n    - issuer: https://shop.example\n      audience: chatbot\n"
        "      keys: [{kid: k1, alg: HS256, secret_env: MINT_SECRET}]\n"
    )
    secret = "m" * 40
    result = gateway_cli(
        "--config",
        str(config),
        "token",
        "mint",
        "--kid",
        "k1",
        "--sub",
        "alice",
        "--ttl",
        "60",
        "--claim",
        "email=a@example.com",
        "--claim",
        "email_verified=true",
        env={"MINT_SECRET": secret},
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"], audience="chatbot")
    assert claims["sub"] == "alice" and claims["iss"] == "https://shop.example"
    assert claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] == 60
    assert jwt.get_unverified_header(result.stdout.strip())["kid"] == "k1"
    unknown = gateway_cli(
        "--config",
        str(config),
        "token",
        "mint",
        "--kid",
        "nope",
        "--sub",
        "a",
        env={"MINT_SECRET": secret},
    )
    assert unknown.returncode == 1


@pytest.mark.slow
def test_demo_serves_and_its_printed_curl_works() -> None:
    port, bot_port, admin_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", str(port), "--bot-port", str(bot_port),
         "--admin-port", str(admin_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for_port(port, proc, timeout=30)
        assert proc.stdout is not None
        printed = ""
        while "Bearer" not in printed:
            printed += proc.stdout.readline()
        token = re.search(r"Bearer ([A-Za-z0-9_.-]+)", printed)
        assert token is not None
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/chat",
            headers={"Authorization": f"Bearer {token.group(1)}"},
            json={"sender": "mallory", "message": "hello"},
        )
        assert response.status_code == 200
        assert response.json()["sender"] == "alice"
        assert response.json()["seen"]["user_id"] == "alice"
        anonymous = httpx.post(f"http://127.0.0.1:{port}/api/chat", json={"message": "x"})
        assert anonymous.status_code == 200
        assert anonymous.json()["seen"]["user_id"].startswith("anon-")
        assert anonymous.json()["seen"]["level"] == "anonymous"
        otp = httpx.get(
            f"http://127.0.0.1:{port}/api/account/balance",
            headers={"Authorization": f"Bearer {token.group(1)}"},
        )
        assert otp.json()["error"] == "otp_required"
    finally:
        stop(proc)  # type: ignore[arg-type]
        if proc.stdout is not None:
            proc.stdout.close()
