"""Metrics move with the traffic: exact counter deltas, in process against the real recorder."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from gateway.app import GatewayApp
from gateway.metrics import Metrics, RequestMetrics
from tests.security.jwt_cases import AttackKeys, valid_token
from tests.support.delivery import running_receivers
from tests.support.ops import in_process, sample, settings_for
from tests.support.procs import Recorder

REQUESTS = "gateway_requests_total"


def requests(app: GatewayApp, rule: str, decision: str, status: str) -> float:
    return sample(app.metrics.render(), REQUESTS, rule=rule, decision=decision, status=status)


def test_request_counters_and_latency_histograms_follow_each_request(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {valid_token(keys, sub='alice')}"}

    async def scenario() -> None:
        async with in_process(settings_for(keys, tmp_path, recorder.url)) as (app, client):
            before = requests(app, "api", "allow", "200")
            for _ in range(3):
                assert (await client.get("/api/things", headers=auth)).status_code == 200
            assert requests(app, "api", "allow", "200") - before == 3
            assert (await client.get("/api/things")).status_code == 401
            assert (await client.get("/nowhere")).status_code == 403
            assert (await client.get("/a//b")).status_code == 400
            assert (await client.get("/auth/session")).status_code == 401
            text = app.metrics.render()
            assert sample(text, REQUESTS, rule="api", decision="refuse", status="401") == 1
            assert sample(text, REQUESTS, rule="(default)", decision="refuse", status="403") == 1
            assert sample(text, REQUESTS, rule="-", decision="refuse", status="400") == 1
            assert sample(text, REQUESTS, rule="/auth", decision="control", status="401") == 1
            # Every request has the gateway's own time; only forwarded ones a backend time.
            assert sample(text, "gateway_processing_seconds_count") == 7
            assert sample(text, "gateway_upstream_seconds_count") == 3
            assert 0 < sample(text, "gateway_upstream_seconds_sum") < 3

    asyncio.run(scenario())


def test_jwt_failures_are_counted_by_reason(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> None:
    now = int(time.time())
    expired = valid_token(keys, iat=now - 4000, exp=now - 3000)
    head, payload, signature = valid_token(keys).split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    cases = [(expired, "expired"), (tampered, "bad_signature"), ("not.a.token", "malformed"),
             (expired, "expired")]

    async def scenario() -> None:
        async with in_process(settings_for(keys, tmp_path, recorder.url)) as (app, client):
            for token, _ in cases:
                answer = await client.get("/api/x", headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 401
            answer = await client.get("/api/x", headers={"Authorization": "Basic YTpi"})
            assert answer.status_code == 401
            text = app.metrics.render()
            name = "gateway_jwt_failures_total"
            assert sample(text, name, reason="expired") == 2
            assert sample(text, name, reason="bad_signature") == 1
            assert sample(text, name, reason="malformed") == 1
            assert sample(text, name, reason="bad_scheme") == 1
            assert sample(text, name, reason="unknown_kid") == 0  # present, at zero

    asyncio.run(scenario())


def test_shadow_rule_passes_the_request_counts_it_and_logs_what_it_would_do(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = {"Authorization": f"Bearer {valid_token(keys, sub='alice')}"}

    async def scenario() -> None:
        async with in_process(settings_for(keys, tmp_path, recorder.url)) as (app, client):
            # 'trial' requires authenticated, mode shadow: without a token it would be a 401.
            for _ in range(2):
                assert (await client.get("/trial/feature")).status_code == 200
            assert (await client.get("/trial/feature", headers=auth)).status_code == 200
            assert requests(app, "trial", "shadow", "200") == 2
            assert requests(app, "trial", "allow", "200") == 1

    asyncio.run(scenario())
    assert len(recorder.requests()) == 3
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{") and '"type":"request"' in line]
    shadow = [line for line in lines if line["decision"] == "shadow-allow"]
    assert len(shadow) == 2
    assert {line["would"] for line in shadow} == {"token_missing"}
    assert {line["rule"] for line in shadow} == {"trial"}


def test_otp_sends_verifies_and_lockouts_are_counted(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> None:
    directory = tmp_path / "customers.yaml"
    directory.write_text('C-1001: {phone: "+4915100001001"}\n')

    async def scenario(webhook: str) -> None:
        settings = settings_for(
            keys, tmp_path, recorder.url,
            directory={"kind": "file", "path": str(directory)},
            senders={"sms": {"kind": "webhook", "url": webhook}},
            otp={"resend_cooldown": 0})
        async with in_process(settings) as (app, client):
            await client.post("/anon/chat", json={"m": 1})
            sent = await client.post("/auth/otp/send", json={"user_id": "C-1001"})
            assert sent.status_code == 202
            decoy = await client.post("/auth/otp/send", json={"user_id": "C-9999"})
            assert decoy.status_code == 202
            for _ in range(5):  # the decoy is the live challenge now: no code matches it
                await client.post("/auth/otp/verify", json={"code": "000000"})
            text = app.metrics.render()
            assert sample(text, "gateway_otp_sends_total", result="sent") == 1
            assert sample(text, "gateway_otp_sends_total", result="not_sent") == 1
            assert sample(text, "gateway_otp_verifies_total", outcome="invalid") == 4
            # The fifth wrong code burns the challenge.
            assert sample(text, "gateway_otp_lockouts_total", scope="challenge") == 1
            assert sample(text, "gateway_otp_verifies_total", outcome="locked") == 1
            # The next try finds no challenge left: invalid, and no new lockout.
            await client.post("/auth/otp/verify", json={"code": "000000"})
            text = app.metrics.render()
            assert sample(text, "gateway_otp_verifies_total", outcome="invalid") == 5
            assert sample(text, "gateway_otp_lockouts_total", scope="challenge") == 1
            assert sample(text, "gateway_otp_verifies_total", outcome="ok") == 0
            assert sample(text, "gateway_otp_sends_total", result="rate_limited") == 0

    with running_receivers() as (_inbox, _smtp, webhook):
        asyncio.run(scenario(webhook))


def test_each_app_has_its_own_registry(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> None:
    async def scenario() -> None:
        settings = settings_for(keys, tmp_path, recorder.url)
        async with in_process(settings) as (first, one), in_process(settings) as (second, _):
            await one.get("/nowhere")
            assert requests(first, "(default)", "refuse", "403") == 1
            assert requests(second, "(default)", "refuse", "403") == 0

    asyncio.run(scenario())


def test_metrics_render_declares_every_family_with_help_and_type() -> None:
    text = Metrics().render().decode()
    for family in ("gateway_requests", "gateway_processing_seconds",
                   "gateway_upstream_seconds", "gateway_jwt_failures", "gateway_otp_sends",
                   "gateway_otp_verifies", "gateway_otp_lockouts", "gateway_websocket_opened",
                   "gateway_websocket_closed", "gateway_policy_reloads", "gateway_policy_rules",
                   "gateway_policy_last_reload_ok"):
        assert f"# HELP {family}" in text
        assert f"# TYPE {family}" in text
    # Label values outside the vocabulary never create a series.
    metrics = Metrics()
    metrics.jwt_failure("something-an-attacker-chose")
    metrics.ws_closed(4999)
    text = metrics.render().decode()
    assert 'reason="other"} 1.0' in text
    assert 'code="other"} 1.0' in text
    assert "attacker" not in text


def test_histogram_buckets_are_cumulative() -> None:
    metrics = RequestMetrics()
    for seconds in (0.00005, 0.0003, 0.0003, 2.0, 100.0):
        metrics.observe("r", "allow", 200, seconds, None)
    text = httpx.Response(200, content=_render(metrics)).text
    assert sample(text, "gateway_processing_seconds_bucket", le="0.0001") == 1
    assert sample(text, "gateway_processing_seconds_bucket", le="0.0005") == 3
    assert sample(text, "gateway_processing_seconds_bucket", le="2.5") == 4
    assert sample(text, "gateway_processing_seconds_bucket", le="+Inf") == 5
    assert sample(text, "gateway_processing_seconds_count") == 5


def _render(collector: RequestMetrics) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry)
