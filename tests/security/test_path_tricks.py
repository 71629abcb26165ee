"""Ambiguous request targets are refused with 400 and never forwarded (CONTRACT §6)."""

from __future__ import annotations

import pytest

from tests.support.procs import Gateway, Recorder, raw_request

TRICKS = {
    "dot-dot": b"/public/../admin/users",
    "dot": b"/public/./page",
    "encoded-dot-dot": b"/public/%2e%2e/admin/users",
    "encoded-dot-dot-upper": b"/public/%2E%2E/admin/users",
    "half-encoded-dot-dot": b"/public/.%2e/admin/users",
    "encoded-slash": b"/public%2f..%2fadmin/users",
    "encoded-slash-upper": b"/api%2Fchat",
    "encoded-backslash": b"/public%5c..%5cadmin",
    "raw-backslash": b"/public\\..\\admin",
    "double-encoding": b"/public/%252e%252e/admin",
    "encoded-percent": b"/public/%25",
    "semicolon-parameter": b"/admin;jsessionid=1",
    "semicolon-dot-dot": b"/public/..;/admin",
    "fragment": b"/public/page#/../../admin",
    "encoded-nul": b"/public/%00/admin",
    "duplicate-slash-leading": b"//admin/users",
    "duplicate-slash-inner": b"/public//page",
    "non-ascii-raw": b"/public/caf\xc3\xa9",
    "non-ascii-encoded": b"/public/caf%C3%A9",
    "malformed-escape": b"/public/%zz",
    "absolute-form": b"http://evil.example/admin/users",
    "absolute-form-public": b"http://127.0.0.1:1/public/page",
    "asterisk-form": b"*",
}


@pytest.mark.parametrize("target", TRICKS.values(), ids=TRICKS.keys())
def test_ambiguous_target_is_refused_before_the_backend(
    gateway: Gateway, recorder: Recorder, target: bytes
) -> None:
    request = b"GET " + target + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    status, headers, body = raw_request(gateway.port, request)
    assert status == 400
    if headers.get("content-type") == "application/json":
        assert b'"error":"bad_request"' in body
    assert recorder.requests() == []


def test_plain_encoded_letters_are_decoded_once_and_forwarded_canonically(
    gateway: Gateway, recorder: Recorder
) -> None:
    status, _, _ = raw_request(
        gateway.port,
        b"GET /public/%41bc%20d?q=%2F HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    )
    # A space (%20) decodes to a control/space character and is refused as well.
    assert status == 400
    status, _, _ = raw_request(
        gateway.port,
        b"GET /public/%41bc-%7E?q=%2F HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    )
    assert status == 200
    [seen] = recorder.requests()
    assert seen["path"] == "/public/Abc-~"
    assert seen["query"] == "q=%2F"


def test_encoded_path_cannot_dodge_a_deny_rule(gateway: Gateway, recorder: Recorder) -> None:
    status, _, body = raw_request(
        gateway.port, b"GET /%61dmin/users HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    assert status == 403
    assert b'"error":"forbidden"' in body
    assert recorder.requests() == []
