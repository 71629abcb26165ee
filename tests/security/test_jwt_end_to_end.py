"""Every JWT attack of the catalogue, replayed through the real gateway process.

The backend must stay untouched and the ``jku``/``x5u`` listener must never be called.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.security.jwt_cases import ATTACKS, AttackKeys, valid_token
from tests.support.procs import Gateway, Recorder, raw_request


class _Counter(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def key_url_listener() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/keys.json"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("case", "factory"), ATTACKS, ids=[case for case, _ in ATTACKS])
def test_attack_token_is_refused_and_never_forwarded(
    gateway: Gateway,
    recorder: Recorder,
    keys: AttackKeys,
    key_url_listener: str,
    case: str,
    factory: object,
) -> None:
    attack = factory(keys, key_url_listener)  # type: ignore[operator]
    # Sent as raw bytes: an HTTP client library would refuse some of these header values.
    request = (
        b"GET /api/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        b"Authorization: Bearer " + attack.encode("latin-1") + b"\r\n\r\n"
    )
    status, _, body = raw_request(gateway.port, request)
    assert status == 401, case
    assert json.loads(body)["error"] in ("token_invalid", "token_expired")
    assert recorder.requests() == []
    assert _Counter.hits == 0


def test_control_token_is_accepted(gateway: Gateway, recorder: Recorder, keys: AttackKeys) -> None:
    response = httpx.get(
        f"{gateway.url}/api/x", headers={"Authorization": f"Bearer {valid_token(keys)}"}
    )
    assert response.status_code == 200
    assert len(recorder.requests()) == 1


@pytest.mark.parametrize(
    "header",
    ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer x y", "Token abc.def.ghi", "bearer"],
)
def test_malformed_authorization_header_is_refused(
    gateway: Gateway, recorder: Recorder, header: str
) -> None:
    response = httpx.get(f"{gateway.url}/api/x", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "token_invalid"
    assert recorder.requests() == []


def test_bearer_scheme_is_case_insensitive(
    gateway: Gateway, recorder: Recorder, keys: AttackKeys
) -> None:
    response = httpx.get(
        f"{gateway.url}/api/x", headers={"Authorization": f"bEaReR {valid_token(keys)}"}
    )
    assert response.status_code == 200


def test_two_authorization_headers_are_refused(
    gateway: Gateway, recorder: Recorder, keys: AttackKeys
) -> None:
    token = valid_token(keys)
    response = httpx.get(
        f"{gateway.url}/api/x",
        headers=[("Authorization", f"Bearer {token}"), ("Authorization", "Bearer other")],
    )
    assert response.status_code == 400
    assert recorder.requests() == []
