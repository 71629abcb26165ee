"""The texts of ``gateway policies check`` and ``gateway policies explain``."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy.explain import check, explain, explain_level_choices, parse_level
from gateway.policy.loader import load_policies
from gateway.policy.model import PolicySet

APP = """\
default: deny
rules:
  - name: chat-message
    match: {path: /api/chat, methods: [POST]}
    require: anonymous
    body_user_id: /sender
  - name: trial-models
    match: {path: /v1/models/**, methods: [GET]}
    require: authenticated
    mode: shadow
  - name: account
    match: {path: /api/account/**}
    require: otp
  - name: api
    match: {path: /api/**}
    require: authenticated
"""
LATE = """\
rules:
  - name: everything
    match: {path: /**, websocket: false}
    require: public
"""


@pytest.fixture
def policies(tmp_path: Path) -> PolicySet:
    (tmp_path / "10-app.yaml").write_text(APP)
    (tmp_path / "20-late.yaml").write_text(LATE)
    return load_policies(tmp_path)


def test_matched_request_lists_the_rules_it_shadows(policies: PolicySet) -> None:
    assert explain(policies, "get", "/api/account/balance", "authenticated") == """\
request:  GET /api/account/balance (plain HTTP), credentials: authenticated
rule:     'account' (10-app.yaml rule #3)
  pattern:      /api/account/**
  methods:      any
  websocket:    any (plain HTTP and WebSocket handshakes)
  require:      otp
  mode:         enforce
decision: refuse 401 otp_required
why:      the route requires 'otp' but the caller is only 'authenticated'
also matching, but never reached because the first match wins:
  - 'api' (10-app.yaml rule #4): require authenticated
  - 'everything' (20-late.yaml rule #1): require public"""


def test_shadow_rule_says_the_request_passes(policies: PolicySet) -> None:
    assert explain(policies, "GET", "/v1/models/gpt", None) == """\
request:  GET /v1/models/gpt (plain HTTP), credentials: none
rule:     'trial-models' (10-app.yaml rule #2)
  pattern:      /v1/models/**
  methods:      GET
  websocket:    any (plain HTTP and WebSocket handshakes)
  require:      authenticated
  mode:         shadow
decision: refuse 401 token_missing
effect:   logged only (mode 'shadow'): the request passes to the backend
why:      the route requires 'authenticated' but the request carries no credentials
also matching, but never reached because the first match wins:
  - 'everything' (20-late.yaml rule #1): require public"""


def test_unmatched_request_gets_the_default(policies: PolicySet) -> None:
    assert explain(policies, "GET", "/ws", "otp", websocket=True) == """\
request:  GET /ws (WebSocket handshake), credentials: otp
rule:     no rule matched -> default 'deny' (set in 10-app.yaml)
decision: refuse 403 forbidden
why:      no rule matched, so the default 'deny' applies (policy denies this route)"""


def test_built_in_default_is_named_as_such() -> None:
    text = explain(PolicySet(rules=()), "GET", "/", None)
    assert "rule:     no rule matched -> default 'deny' (built in)" in text.splitlines()


def test_anonymous_route_without_credentials_creates_a_session(policies: PolicySet) -> None:
    assert explain(policies, "POST", "/api/chat", None).splitlines()[7:11] == [
        "  body_user_id: /sender",
        "decision: allow",
        "why:      the route requires 'anonymous' and the caller is 'anonymous'",
        "note:     the caller has no credentials, so the gateway first creates an anonymous "
        "session (a new session cookie) and decides on that",
    ]


def test_check_ok_summary(tmp_path: Path) -> None:
    (tmp_path / "10-app.yaml").write_text(APP)
    assert check(tmp_path) == (0, "OK: 4 rules in 1 file, default 'deny'")
    (tmp_path / "20-late.yaml").write_text(LATE)
    assert check(tmp_path) == (0, "OK: 5 rules in 2 files, default 'deny'")


def test_check_lists_every_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules:\n  - {name: x, match: {path: x}, require: nope}\n")
    assert check(tmp_path) == (1, (
        "a.yaml: rule #1 ('x'): option 'match.path' must be a path pattern starting with '/' "
        "(segments: literals, '*' or '**') but it's configured as 'x'\n"
        "a.yaml: rule #1 ('x'): option 'require' must be one of 'public', 'anonymous', "
        "'authenticated', 'otp', 'deny' but it's configured as 'nope'"
    ))


def test_level_choices() -> None:
    assert explain_level_choices == ("none", "anonymous", "authenticated", "otp")
    assert [parse_level(choice) for choice in explain_level_choices] == [
        None, "anonymous", "authenticated", "otp"]
    with pytest.raises(ValueError, match="level must be one of none, anonymous"):
        parse_level("admin")
