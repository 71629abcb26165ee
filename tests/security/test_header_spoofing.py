"""Spoofed identity headers never reach the backend, in any spelling (CONTRACT §6)."""

from __future__ import annotations

import pytest

from tests.support.procs import Gateway, Recorder, raw_request

SPOOFED = [
    "X-User-Id",
    "x-user-id",
    "X-USER-ID",
    "X_User_Id",
    "x_user_id",
    "X-User_Id",
    "X-Auth-Level",
    "X_AUTH_LEVEL",
    "X-User-Email",
    "X-User-Name",
    "X-User-Roles",
    "X-Anonymous-Id",
    "X-Gateway-Assertion",
    "X-Gateway-Anything",
    "X-Auth-Request-User",
    "Remote-User",
    "Remote_User",
    "X-Remote-User",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Authenticated-User",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Forwarded-Uri",
]


def _normalised(name: str) -> str:
    return name.lower().replace("_", "-")


def _identity_headers(record: dict[str, object]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in record["headers"]:  # type: ignore[attr-defined]
        key = _normalised(name)
        if key in {_normalised(s) for s in SPOOFED} or key.startswith(
            ("x-user-", "x-auth-", "x-gateway-", "x-anonymous-")
        ):
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("name", SPOOFED)
def test_spoofed_header_is_stripped_with_token(
    gateway: Gateway, recorder: Recorder, token: str, name: str
) -> None:
    request = (
        f"GET /api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n"
        f"{name}: mallory\r\n{name}: root\r\nConnection: close\r\n\r\n"
    ).encode()
    status, _, _ = raw_request(gateway.port, request)
    assert status == 200
    [seen] = recorder.requests()
    assert _identity_headers(seen) == {"x-user-id": ["alice"], "x-auth-level": ["authenticated"]}


@pytest.mark.parametrize("name", SPOOFED)
def test_spoofed_header_is_stripped_on_public_route_without_identity(
    gateway: Gateway, recorder: Recorder, name: str
) -> None:
    request = f"GET /public/x HTTP/1.1\r\nHost: gw\r\n{name}: mallory\r\n\r\n".encode()
    status, _, _ = raw_request(gateway.port, request + b"")
    assert status == 200
    [seen] = recorder.requests()
    assert _identity_headers(seen) == {}


def test_connection_header_cannot_remove_injected_identity(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    request = (
        f"GET /api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n"
        f"Connection: keep-alive, X-User-Id, X-Auth-Level, X-Custom\r\nX-Custom: 1\r\n"
        f"X-Other: 2\r\n\r\n"
    ).encode()
    status, _, _ = raw_request(gateway.port, request)
    assert status == 200
    [seen] = recorder.requests()
    names = [n.lower() for n, _ in seen["headers"]]
    assert _identity_headers(seen) == {"x-user-id": ["alice"], "x-auth-level": ["authenticated"]}
    assert "x-custom" not in names  # a header named in Connection is hop-by-hop
    assert "x-other" in names
    assert "connection" not in names or seen["headers"][names.index("connection")][1] != (
        "keep-alive, X-User-Id, X-Auth-Level, X-Custom"
    )


def test_gateway_cookie_and_authorization_are_not_forwarded(
    gateway: Gateway, recorder: Recorder, token: str
) -> None:
    request = (
        f"GET /api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n"
        f"Cookie: theme=dark; gw_session=abc123; __Host-gw_session=def456; lang=de\r\n\r\n"
    ).encode()
    raw_request(gateway.port, request)
    [seen] = recorder.requests()
    cookies = [v for n, v in seen["headers"] if n.lower() == "cookie"]
    assert cookies == ["theme=dark; lang=de"]
    assert [n for n, _ in seen["headers"] if n.lower() == "authorization"] == []


def test_hop_by_hop_headers_are_dropped(gateway: Gateway, recorder: Recorder, token: str) -> None:
    request = (
        f"GET /api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n"
        f"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eDp5\r\n"
        f"Upgrade: h2c\r\nProxy-Connection: keep-alive\r\n\r\n"
    ).encode()
    raw_request(gateway.port, request)
    [seen] = recorder.requests()
    names = {n.lower() for n, _ in seen["headers"]}
    assert names.isdisjoint(
        {"keep-alive", "te", "proxy-authorization", "upgrade", "proxy-connection"}
    )
