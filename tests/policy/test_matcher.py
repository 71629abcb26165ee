"""Path patterns, the compiled index, and first-match-wins."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.policy.loader import load_policies
from gateway.policy.matcher import compile_pattern, glob_segments, is_valid_pattern, split_path
from gateway.policy.model import METHODS, PolicySet, Rule


def make_rule(
    index: int,
    pattern: str,
    methods: frozenset[str] | None = None,
    websocket: bool | None = None,
    require: str = "public",
) -> Rule:
    return Rule(name=f"r{index}", file="t.yaml", position=index + 1, index=index,
                pattern=pattern, methods=methods, websocket=websocket, require=require,
                body_user_id=(), mode="enforce")


def reference_match(pattern: Sequence[str], path: Sequence[str]) -> bool:
    """The definition in policies/README.md, written as plainly as possible."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(reference_match(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    if head == "*":
        return path[0] != "" and reference_match(rest, path[1:])
    return head == path[0] and reference_match(rest, path[1:])


def name_at(policies: PolicySet, method: str, path: str) -> str | None:
    rule = policies.match(method, path)
    return None if rule is None else rule.name


def naive_first_match(
    rules: Sequence[Rule], method: str, path: str, websocket: bool
) -> Rule | None:
    for rule in rules:
        if rule.methods is not None and method not in rule.methods:
            continue
        if rule.websocket is not None and rule.websocket != websocket:
            continue
        if reference_match(split_path(rule.pattern), split_path(path)):
            return rule
    return None


@pytest.mark.parametrize("pattern", [
    "/", "/a", "/a/", "/*", "/**", "/*/", "/**/", "/a/*/b", "/a/**/b", "/api/v1.2/x-y_z~",
    "/a/**/**", "/user:@!$&'()+,=", "/v3/directline/conversations/*/activities",
])
def test_valid_patterns(pattern: str) -> None:
    assert is_valid_pattern(pattern)


@pytest.mark.parametrize("pattern", [
    "", "a", "api/*", "//", "/a//b", "/a//", "/a/b//", "/./a", "/a/..", "/a/.", "/a*",
    "/*a", "/***", "/a/**b", "/a%2Fb", "/a;b", "/a#b", "/a\\b", "/a?b", "/a b", "/a\tb",
    "/caf\u00e9", "/a/*.json",
])
def test_invalid_patterns(pattern: str) -> None:
    assert not is_valid_pattern(pattern)


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("/", "/", True),
    ("/", "/a", False),
    ("/a", "/a", True),
    ("/a", "/a/", False),
    ("/a", "/A", False),
    ("/a/", "/a/", True),
    ("/a/", "/a", False),
    ("/*", "/a", True),
    ("/*", "/", False),
    ("/*", "/a/", False),
    ("/*", "/a/b", False),
    ("/*/", "/a/", True),
    ("/a/*", "/a/", False),
    ("/**", "/", True),
    ("/**", "/a/b/c/", True),
    ("/api/**", "/api", True),
    ("/api/**", "/api/", True),
    ("/api/**", "/api/x", True),
    ("/api/**", "/api/x/y/", True),
    ("/api/**", "/apix", False),
    ("/api/**", "/ap", False),
    ("/api/**", "/", False),
    ("/a/**/b", "/a/b", True),
    ("/a/**/b", "/a/x/y/b", True),
    ("/a/**/b", "/a/x/y/b/", False),
    ("/a/**/b", "/a/b/c", False),
    ("/a/*/b", "/a/x/b", True),
    ("/a/*/b", "/a/b", False),
    ("/**/x", "/x", True),
    ("/**/x", "/a/b/x", True),
    ("/**/x", "/a/b/xx", False),
    ("/**/", "/", False),
    ("/**/", "/a/", True),
    ("/a/**/**", "/a", True),
    ("/c/*/*", "/c/x/y", True),
    ("/c/*/*", "/c/x", False),
])
def test_pattern_matching(pattern: str, path: str, expected: bool) -> None:
    assert is_valid_pattern(pattern)
    assert reference_match(split_path(pattern), split_path(path)) is expected
    assert glob_segments(split_path(pattern), split_path(path)) is expected
    assert compile_pattern(pattern)(path) is expected


SEGMENTS = ("a", "b", "c", "api", "*", "**")
PATH_SEGMENTS = ("a", "b", "c", "api", "x")
ALL_METHODS = (*METHODS, "TRACE")


def random_pattern(rng: random.Random) -> str:
    segments = [rng.choice(SEGMENTS) for _ in range(rng.randint(0, 4))]
    pattern = "/" + "/".join(segments)
    if segments and rng.random() < 0.2:
        pattern += "/"
    return pattern


def random_path(rng: random.Random) -> str:
    segments = [rng.choice(PATH_SEGMENTS) for _ in range(rng.randint(0, 5))]
    path = "/" + "/".join(segments)
    if segments and rng.random() < 0.2:
        path += "/"
    return path


def random_rules(rng: random.Random) -> tuple[Rule, ...]:
    rules = []
    for index in range(rng.randint(0, 12)):
        methods = None
        if rng.random() < 0.5:
            methods = frozenset(rng.sample(METHODS, rng.randint(1, 3)))
        websocket = rng.choice((None, None, True, False))
        rules.append(make_rule(index, random_pattern(rng), methods, websocket))
    return tuple(rules)


@pytest.mark.parametrize("seed", range(20))
def test_compiled_index_equals_a_naive_linear_scan(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        rules = random_rules(rng)
        assert all(is_valid_pattern(rule.pattern) for rule in rules)
        policies = PolicySet(rules=rules)
        for _ in range(40):
            method, path = rng.choice(ALL_METHODS), random_path(rng)
            websocket = rng.random() < 0.3
            expected = naive_first_match(rules, method, path, websocket)
            assert policies.match(method, path, websocket) is expected, (
                [r.pattern for r in rules], method, path, websocket)


def test_compiled_patterns_equal_the_reference_definition() -> None:
    rng = random.Random(1234)
    for _ in range(3000):
        pattern, path = random_pattern(rng), random_path(rng)
        expected = reference_match(split_path(pattern), split_path(path))
        assert compile_pattern(pattern)(path) is expected, (pattern, path)


def test_method_filter_is_exact() -> None:
    policies = PolicySet(rules=(
        make_rule(0, "/chat", frozenset({"GET"})),
        make_rule(1, "/chat", frozenset({"POST", "PUT"})),
    ))
    assert policies.match("GET", "/chat") is policies.rules[0]
    assert policies.match("POST", "/chat") is policies.rules[1]
    assert policies.match("PUT", "/chat") is policies.rules[1]
    # HEAD is not implied by GET, and unknown methods only meet rules without a method list.
    assert policies.match("HEAD", "/chat") is None
    assert policies.match("TRACE", "/chat") is None
    assert policies.match("get", "/chat") is None


def test_websocket_tri_state() -> None:
    only_ws = make_rule(0, "/ws", websocket=True)
    only_http = make_rule(1, "/ws", websocket=False)
    both = make_rule(2, "/both")
    policies = PolicySet(rules=(only_ws, only_http, both))
    assert policies.match("GET", "/ws", websocket=True) is only_ws
    assert policies.match("GET", "/ws", websocket=False) is only_http
    assert policies.match("GET", "/ws") is only_http
    assert policies.match("GET", "/both", websocket=True) is both
    assert policies.match("GET", "/both", websocket=False) is both


def test_wildcard_first_rules_keep_their_place_among_literal_ones() -> None:
    policies = PolicySet(rules=(
        make_rule(0, "/api/public"),
        make_rule(1, "/**", frozenset({"DELETE"})),
        make_rule(2, "/api/**"),
        make_rule(3, "/*/admin"),
    ))
    assert name_at(policies, "GET", "/api/public") == "r0"
    assert name_at(policies, "DELETE", "/api/x") == "r1"
    assert name_at(policies, "GET", "/api/admin") == "r2"
    assert name_at(policies, "GET", "/other/admin") == "r3"
    assert policies.match("GET", "/other") is None


def test_first_match_wins_across_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "20-broad.yaml").write_text(
        "rules:\n"
        "  - {name: api, match: {path: /api/**}, require: authenticated}\n"
        "  - {name: api-chat, match: {path: /api/chat}, require: anonymous}\n"
    )
    (tmp_path / "10-narrow.yaml").write_text(
        "rules:\n  - {name: account, match: {path: /api/account/**}, require: otp}\n"
    )
    policies = load_policies(tmp_path)
    assert [r.name for r in policies.rules] == ["account", "api", "api-chat"]
    assert name_at(policies, "GET", "/api/account/balance") == "account"
    # 'api-chat' comes after the broader 'api', so it never matches.
    assert name_at(policies, "POST", "/api/chat") == "api"
    assert policies.match("GET", "/elsewhere") is None
