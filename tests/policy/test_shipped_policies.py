"""The policies we ship load cleanly, every rule can be reached, and the demo routes behave."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.policy.decide import decide
from gateway.policy.loader import load_policies
from gateway.policy.matcher import split_path
from gateway.policy.model import PolicySet, Rule

POLICIES = Path(__file__).resolve().parents[2] / "policies"
EXAMPLES = sorted((POLICIES / "examples").glob("*.yaml"))


def load_example(example: Path, tmp_path: Path) -> PolicySet:
    # Each example is a complete set of its own (each sets `default`), so it is loaded alone.
    shutil.copy(example, tmp_path / example.name)
    return load_policies(tmp_path)


def representative(rule: Rule) -> tuple[str, str, bool]:
    """A request the rule matches: wildcards filled in, its first method, its transport."""
    segments = [{"*": "x1"}.get(s, s) for s in split_path(rule.pattern) if s != "**"]
    path = "/" + "/".join(segments)
    method = "GET" if rule.websocket else sorted(rule.methods or {"GET"})[0]
    return method, path, bool(rule.websocket)


def assert_every_rule_reachable(policies: PolicySet) -> None:
    """A rule that an earlier, broader rule always wins over is a mistake worth catching."""
    for rule in policies.rules:
        method, path, websocket = representative(rule)
        assert policies.match(method, path, websocket) is rule, (rule.name, method, path)


def test_default_policy_loads() -> None:
    policies = load_policies(POLICIES)
    assert policies.files == ("default.yaml",)
    assert policies.default == "deny"
    assert_every_rule_reachable(policies)


def test_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "rasa.yaml", "botframework.yaml", "botpress.yaml", "llm-chat.yaml"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_loads_on_its_own(example: Path, tmp_path: Path) -> None:
    policies = load_example(example, tmp_path)
    assert policies.rules
    assert policies.default == "deny"
    assert_every_rule_reachable(policies)


@pytest.mark.parametrize(("method", "path", "websocket", "rule", "require", "pointers"), [
    ("GET", "/", False, "chat-page", "public", ()),
    ("HEAD", "/", False, "chat-page", "public", ()),
    ("GET", "/static/js/chat.js", False, "static-assets", "public", ()),
    ("GET", "/healthz", False, "backend-health", "public", ()),
    ("GET", "/demo/token", False, "demo-token", "public", ()),
    ("POST", "/api/chat", False, "chat-message", "anonymous", ("/sender",)),
    ("GET", "/api/chat/stream", False, "chat-stream", "anonymous", ()),
    ("GET", "/ws", True, "chat-websocket", "anonymous", ("/sender",)),
    ("GET", "/api/account/balance", False, "account", "otp", ()),
    ("GET", "/api/account", False, "account", "otp", ()),
    ("PUT", "/api/profile/me", False, "profile", "authenticated", ()),
    ("GET", "/admin", False, "admin", "deny", ()),
    ("POST", "/admin/users/1", False, "admin", "deny", ()),
])
def test_demo_routes(method: str, path: str, websocket: bool, rule: str, require: str,
                     pointers: tuple[str, ...]) -> None:
    matched = load_policies(POLICIES).match(method, path, websocket)
    assert matched is not None
    assert (matched.name, matched.require, matched.body_user_id) == (rule, require, pointers)


@pytest.mark.parametrize(("method", "path", "websocket"), [
    ("GET", "/ws", False),  # The chat WebSocket rule is for handshakes only.
    ("POST", "/", False),
    ("DELETE", "/api/chat", False),
    ("GET", "/api/chat", False),
    ("GET", "/API/chat", False),
    ("GET", "/metrics", False),
])
def test_everything_else_is_denied_by_default(method: str, path: str, websocket: bool) -> None:
    policies = load_policies(POLICIES)
    assert policies.match(method, path, websocket) is None
    assert decide(policies.default, "otp").error is not None


@pytest.mark.parametrize(("example", "method", "path", "rule", "pointers"), [
    ("rasa.yaml", "POST", "/webhooks/rest/webhook", "rasa-rest-webhook", ("/sender",)),
    ("rasa.yaml", "GET", "/conversations/abc/tracker", "rasa-conversations-api", ()),
    ("botframework.yaml", "POST", "/v3/directline/conversations/c1/activities",
     "directline-send-activity", ("/from/id",)),
    ("botpress.yaml", "POST", "/api/v1/messages", "botpress-create-message", ("/authorId",)),
    ("llm-chat.yaml", "POST", "/v1/chat/completions", "chat-completions",
     ("/user", "/metadata/user_id")),
    ("llm-chat.yaml", "GET", "/v1/account/keys", "account", ()),
])
def test_example_key_routes(tmp_path: Path, example: str, method: str, path: str, rule: str,
                            pointers: tuple[str, ...]) -> None:
    policies = load_example(POLICIES / "examples" / example, tmp_path)
    matched = policies.match(method, path)
    assert matched is not None
    assert (matched.name, matched.body_user_id) == (rule, pointers)
