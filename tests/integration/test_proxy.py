"""The gateway as a real process in front of a real recorder backend."""

from __future__ import annotations

import base64
import json
import socket
import time
from typing import Any

import httpx
import pytest

from tests.conftest import gateway_config, gateway_env
from tests.security.jwt_cases import AttackKeys, valid_token
from tests.support.procs import Gateway, Recorder, raw_request, start_gateway, stop


def headers_named(record: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in record["headers"] if n.lower() == name]


def body_of(record: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(record["body_b64"]))


def test_valid_token_reaches_backend_with_exactly_one_trusted_user_id(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    response = httpx.get(
        f"{gateway.url}/api/things?page=2",
        headers={"Authorization": f"Bearer {token}", "X-User-Id": "mallory"},
    )
    assert response.status_code == 200
    [seen] = recorder.requests()
    assert seen["path"] == "/api/things"
    assert seen["query"] == "page=2"
    assert headers_named(seen, "x-user-id") == ["alice"]
    assert headers_named(seen, "x-auth-level") == ["authenticated"]
    assert headers_named(seen, "authorization") == []


def test_email_is_forwarded_only_when_verified(
    gateway: Gateway, recorder: Recorder, keys: AttackKeys
) -> None:
    verified = valid_token(
        keys, sub="bob", email="bob@example.com", email_verified=True, name="Bob Jörg"
    )
    unverified = valid_token(keys, sub="eve", email="eve@example.com")
    for tok in (verified, unverified):
        assert (
            httpx.get(
                f"{gateway.url}/api/x", headers={"Authorization": f"Bearer {tok}"}
            ).status_code
            == 200
        )
    first, second = recorder.requests()
    assert headers_named(first, "x-user-email") == ["bob@example.com"]
    assert headers_named(first, "x-user-name") == ["Bob J%C3%B6rg"]
    assert headers_named(second, "x-user-email") == []


@pytest.mark.parametrize(
    ("path", "method", "status", "error"),
    [
        ("/api/things", "GET", 401, "token_missing"),
        ("/admin/users", "GET", 403, "forbidden"),
        ("/not/in/any/rule", "GET", 403, "forbidden"),
        ("/api/account/balance", "GET", 401, "otp_required"),
    ],
)
def test_refusals_without_credentials_never_reach_backend(
    gateway: Gateway, recorder: Recorder, path: str, method: str, status: int, error: str
) -> None:
    response = httpx.request(method, f"{gateway.url}{path}")
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.headers["content-type"] == "application/json"
    assert recorder.requests() == []


def test_missing_token_gets_rfc6750_challenge(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/api/things")
    assert response.headers["www-authenticate"] == 'Bearer realm="gateway"'


def test_otp_route_with_token_asks_for_step_up_per_rfc9470(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    response = httpx.get(
        f"{gateway.url}/api/account/balance", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "otp_required"
    assert 'error="insufficient_user_authentication"' in response.headers["www-authenticate"]
    assert recorder.requests() == []


def test_invalid_token_is_refused_on_protected_route_and_ignored_on_public(
    gateway: Gateway, recorder: Recorder
) -> None:
    bad = {"Authorization": "Bearer not.a.token"}
    refused = httpx.get(f"{gateway.url}/api/things", headers=bad)
    assert refused.status_code == 401
    assert refused.json()["error"] == "token_invalid"
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert recorder.requests() == []
    passed = httpx.get(f"{gateway.url}/public/page", headers={**bad, "X-User-Id": "mallory"})
    assert passed.status_code == 200
    [seen] = recorder.requests()
    assert headers_named(seen, "x-user-id") == []
    assert headers_named(seen, "authorization") == []


def test_valid_token_on_public_route_is_injected(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    httpx.get(f"{gateway.url}/public/page", headers={"Authorization": f"Bearer {token}"})
    [seen] = recorder.requests()
    assert headers_named(seen, "x-user-id") == ["alice"]


def test_expired_token_says_token_expired(
    gateway: Gateway, recorder: Recorder, keys: AttackKeys
) -> None:
    now = int(time.time())
    expired = valid_token(keys, sub="alice", iat=now - 4000, exp=now - 3000)
    response = httpx.get(f"{gateway.url}/api/x", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.json()["error"] == "token_expired"
    assert recorder.requests() == []


def test_body_user_id_is_overwritten_and_created(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    response = httpx.post(
        f"{gateway.url}/api/chat",
        headers={"Authorization": f"Bearer {token}"},
        json={"sender": "mallory", "message": "hi"},
    )
    assert response.status_code == 200
    [seen] = recorder.requests()
    assert body_of(seen) == {"sender": "alice", "message": "hi", "meta": {"user": "alice"}}
    assert headers_named(seen, "content-length") == [str(len(base64.b64decode(seen["body_b64"])))]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"sender=mallory", "application/x-www-form-urlencoded", 415),
        (b'{"sender": "a"', "application/json", 400),
        (b'{"sender": "a", "sender": "mallory"}', "application/json", 400),
        (b'["sender"]', "application/json", 400),
        (b'{"meta": "scalar"}', "application/json", 400),
        (b'{"n": NaN}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
    ],
)
def test_body_user_id_refuses_what_it_cannot_read_one_way(
    gateway: Gateway,
    recorder: Recorder,
    token: str,
    content: bytes,
    content_type: str,
    status: int,
) -> None:
    response = httpx.post(
        f"{gateway.url}/api/chat",
        content=content,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    assert response.status_code == status
    assert response.json()["error"] in ("bad_request", "unsupported_media_type")
    assert recorder.requests() == []


def test_public_body_user_id_route_removes_client_chosen_id(
    gateway: Gateway, recorder: Recorder
) -> None:
    response = httpx.post(f"{gateway.url}/public-webhook", json={"sender": "admin", "text": "x"})
    assert response.status_code == 200
    [seen] = recorder.requests()
    assert body_of(seen) == {"text": "x"}


def test_sse_first_event_reaches_client_before_backend_finishes(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    with httpx.stream(
        "GET", f"{gateway.url}/sse", headers={"Authorization": f"Bearer {token}"}, timeout=15
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == "data: first"
        # The backend is still holding its stream open: the event was relayed, not buffered.
        assert recorder.state()["sse_finished"] is False
        recorder.release()
        rest = [line for line in lines if line]
    assert rest == ["data: second"]
    assert recorder.state()["sse_finished"] is True


def test_every_set_cookie_is_kept(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/cookies")
    assert response.headers.get_list("set-cookie") == [
        "c0=0; Path=/",
        "c1=1; Path=/",
        "c2=2; Path=/",
    ]


def test_chunked_response_is_relayed(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/chunked")
    assert response.text == "one two three"


@pytest.mark.parametrize("status", [204, 304, 404, 500])
def test_backend_status_is_relayed(gateway: Gateway, status: int) -> None:
    response = httpx.get(f"{gateway.url}/status/{status}")
    assert response.status_code == status


def test_head_request_has_no_body(gateway: Gateway) -> None:
    status, _, body = raw_request(
        gateway.port, b"HEAD /cookies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 200
    assert body == b""


def test_slow_backend_gives_504(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/slow?delay=4", timeout=10)
    assert response.status_code == 504
    assert response.json()["error"] == "upstream_timeout"


def test_body_over_limit_is_refused_before_forwarding(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    big = b"x" * (1024 * 1024 + 1)
    response = httpx.post(
        f"{gateway.url}/api/upload", content=big, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"

    def chunks() -> Any:
        for _ in range(17):
            yield b"y" * 65536

    chunked = httpx.post(
        f"{gateway.url}/api/upload", content=chunks(), headers={"Authorization": f"Bearer {token}"}
    )
    assert chunked.status_code == 413
    assert recorder.requests() == []


def test_large_body_within_limit_streams_through(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    payload = bytes(range(256)) * 4000  # 1,024,000 bytes, just under 1 MiB
    response = httpx.post(
        f"{gateway.url}/api/upload",
        content=payload,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200
    [seen] = recorder.requests()
    assert base64.b64decode(seen["body_b64"]) == payload


def test_forwarded_for_comes_from_the_connection(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    httpx.get(
        f"{gateway.url}/api/x",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
            "Forwarded": "for=6.6.6.6",
        },
    )
    [seen] = recorder.requests()
    assert headers_named(seen, "x-forwarded-for") == ["127.0.0.1"]
    assert headers_named(seen, "x-forwarded-proto") == ["http"]
    assert headers_named(seen, "x-forwarded-host") == [f"127.0.0.1:{gateway.port}"]
    assert headers_named(seen, "forwarded") == []
    assert headers_named(seen, "host") == [f"127.0.0.1:{recorder.port}"]


def test_auth_prefix_is_never_forwarded(gateway: Gateway, recorder: Recorder) -> None:
    response = httpx.get(f"{gateway.url}/auth/anything")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert recorder.requests() == []


def test_shadow_rule_lets_traffic_pass_and_logs_the_refusal(
    gateway: Gateway, recorder: Recorder
) -> None:
    response = httpx.get(f"{gateway.url}/trial/new-feature", headers={"X-User-Id": "mallory"})
    assert response.status_code == 200
    [seen] = recorder.requests()
    assert headers_named(seen, "x-user-id") == []
    time.sleep(0.5)  # request lines are flushed in batches every 0.2 s
    lines = [
        line
        for line in gateway.log_lines()
        if line.get("type") == "request" and line.get("path") == "/trial/new-feature"
    ]
    assert lines[-1]["decision"] == "shadow-allow"
    assert lines[-1]["rule"] == "trial"


def test_request_log_has_one_json_line_per_request_without_the_token(
    gateway: Gateway, token: str
) -> None:
    httpx.get(
        f"{gateway.url}/api/logged?token=secret-in-query",
        headers={"Authorization": f"Bearer {token}"},
    )
    time.sleep(0.5)
    lines = [line for line in gateway.log_lines() if line.get("path") == "/api/logged"]
    assert len(lines) == 1
    assert lines[0]["status"] == 200 and lines[0]["rule"] == "api"
    assert lines[0]["level"] == "authenticated" and lines[0]["decision"] == "allow"
    text = gateway.stdout_path.read_text() + gateway.stderr_path.read_text()
    assert token not in text
    assert "secret-in-query" not in text


def test_upstream_down_gives_502(keys: AttackKeys, token: str, tmp_path: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    gw = start_gateway(
        tmp_path,
        gateway_config(keys, tmp_path, f"http://127.0.0.1:{closed_port}"),
        gateway_env(keys),
    )
    try:
        response = httpx.get(f"{gw.url}/api/x", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 502
        assert response.json() == {
            "error": "upstream_unavailable",
            "message": "The chatbot backend is unreachable.",
        }
    finally:
        stop(gw.proc)


def test_invalid_config_lists_every_error_and_exits_non_zero(tmp_path: Any) -> None:
    config = {
        "upstream": {"url": "ftp://backend", "read_timeout": -1},
        "limits": {"max_body_bytes": "lots"},
        "jwt": {
            "issuers": [
                {
                    "issuer": "https://x",
                    "keys": [
                        {"kid": "k1", "alg": "HS256", "secret": "inline-secret-value"},
                        {"kid": "k2", "alg": "none", "secret_env": "X"},
                    ],
                }
            ]
        },
        "typo_option": 1,
    }
    gw = start_gateway(tmp_path, config, {"GATEWAY_LISTEN_PORT": "99999"}, expect_failure=True)
    assert gw.proc.wait(timeout=20) == 2
    err = gw.stderr_path.read_text()
    config_path = tmp_path / "gateway.yaml"
    for line in [
        f"{config_path}: option 'upstream.url' must be an http:// URL with a host and no path "
        "but it's configured as 'ftp://backend'",
        f"{config_path}: option 'upstream.read_timeout' must be a positive number of seconds "
        "but it's configured as '-1'",
        f"{config_path}: option 'limits.max_body_bytes' must be a positive integer (bytes) "
        "but it's configured as 'lots'",
        f"{config_path}: option 'typo_option' is not a known option",
        "GATEWAY_LISTEN_PORT: option 'listen.port' must be a port number (1-65535) "
        "but it's configured as '99999'",
        f"{config_path}: option 'jwt.issuers[1].keys[1].secret' is not allowed",
        f"{config_path}: option 'jwt.issuers[1].keys[2].alg' must be one of",
    ]:
        assert line in err
    assert "inline-secret-value" not in err


@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
def test_trace_and_connect_are_not_forwarded(gateway: Gateway, recorder: Recorder,
                                             method: str) -> None:
    status, _, _ = raw_request(
        gateway.port, f"{method} /public/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
        .encode())
    assert status in (400, 405)
    assert recorder.requests() == []


def test_oversized_header_block_is_refused(gateway: Gateway, recorder: Recorder) -> None:
    response = httpx.get(f"{gateway.url}/public/x", headers={"X-Big": "b" * 70_000})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert recorder.requests() == []
