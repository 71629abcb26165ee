"""The request log's per-request line (gateway/observe.py, RequestLog.request)."""

from __future__ import annotations

import io
import json

import pytest

from gateway.errors import BadRequest
from gateway.observe import RequestLog, configure_user_ids, user_hash
from gateway.policy.paths import canonical_path


def lines_of(log: RequestLog, stream: io.StringIO) -> list[dict[str, object]]:
    log.flush()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_request_line_has_the_fields_of_a_record_in_the_same_order() -> None:
    configure_user_ids("hash", b"salt-for-the-test")
    stream = io.StringIO()
    log = RequestLog(stream)
    log.request("POST", '/api/"quoted"\\é', "chat", "allow", "authenticated", "alice", 200,
                None, None, 0.0015, 0.0004, None)
    log.emit({"method": "POST", "path": '/api/"quoted"\\é', "rule": "chat", "decision": "allow",
              "level": "authenticated", "user": "alice", "status": 200, "error": None,
              "reason": None, "ms": 1.5, "upstream_ms": 0.4})
    templated, from_dict = lines_of(log, stream)
    assert list(templated) == list(from_dict)
    assert {k: v for k, v in templated.items() if k != "time"} == {
        k: v for k, v in from_dict.items() if k != "time"}
    assert templated["user"] == user_hash("alice") != "alice"
    assert isinstance(templated["time"], float)


def test_request_line_of_a_refusal_in_shadow_mode() -> None:
    stream = io.StringIO()
    log = RequestLog(stream)
    log.request("GET", "/x", None, "shadow-allow", None, None, 401, "token_invalid", "expired",
                0.5, None, "token_invalid")
    (line,) = lines_of(log, stream)
    assert line["upstream_ms"] is None and line["user"] is None and line["rule"] is None
    assert line["would"] == "token_invalid"
    assert line["ms"] == 500.0


def test_disabled_log_writes_nothing() -> None:
    stream = io.StringIO()
    log = RequestLog(stream, enabled=False)
    log.request("GET", "/", None, "allow", None, None, 200, None, None, 0.1, 0.1, None)
    assert lines_of(log, stream) == []


def test_remembered_paths_are_still_refused_every_time() -> None:
    # Accepted paths are memoised; refusals must never be, or a second try would pass.
    assert canonical_path(b"/api/chat") == canonical_path(b"/api/chat") == "/api/chat"
    for _ in range(2):
        with pytest.raises(BadRequest):
            canonical_path(b"/api/..%2Fadmin")
        with pytest.raises(BadRequest):
            canonical_path(b"/api/\x7f")
