"""Loading and validation: every mistake is reported, in the exact words a user will read."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import PolicyLoadError
from gateway.policy.loader import load_policies
from gateway.policy.model import PolicySet, Rule

REQUIRE = "one of 'public', 'anonymous', 'authenticated', 'otp', 'deny'"
PATH = "a path pattern starting with '/' (segments: literals, '*' or '**')"
METHODS = (
    "a non-empty list of distinct methods among "
    "'GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'"
)
POINTER = "a JSON pointer such as '/sender', or a non-empty list of them"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(directory: Path) -> list[str]:
    with pytest.raises(PolicyLoadError) as caught:
        load_policies(directory)
    return caught.value.errors


MISTAKES = """\
description: 42
default: maybe
colour: blue
rules:
  - name: ok-rule
    match: {path: /ok}
    require: public
  - match: {path: /x}
    require: public
  - name: ok-rule
    match: {path: api/chat}
    require: publik
  - name: wildcards
    match: {path: /api/*.json, methods: [GET, FETCH], websocket: "yes"}
    require: anonymous
    mode: audit
  - name: dots
    match: {path: /a/../b, methods: [get]}
    require: deny
    body_user_id: sender
  - name: deny-pointer
    match: {path: /c}
    require: deny
    body_user_id: /sender
  - name: pointers
    match: {path: /d, methods: [POST], tls: true}
    require: anonymous
    body_user_id: [/sender, /a~2b, /]
  - name: read-only
    match: {path: /e, methods: [GET, HEAD]}
    require: authenticated
    body_user_id: /user
    requires: otp
  - just a string
  - name: ""
    require: otp
  - name: socket
    match: {path: /ws//x, methods: [POST], websocket: true}
    require: anonymous
"""


def test_every_mistake_in_one_file_is_reported_at_once_in_order(tmp_path: Path) -> None:
    write(tmp_path, "10-mistakes.yaml", MISTAKES)
    f = "10-mistakes.yaml"
    assert errors_of(tmp_path) == [
        f"{f}: option 'default' must be {REQUIRE} but it's configured as 'maybe'",
        f"{f}: option 'description' must be a string but it's configured as '42'",
        f"{f}: option 'colour' is not a known option (known: rules, default, description)",
        f"{f}: rule #2 (''): option 'name' must be a non-empty string "
        "but it's configured as '<missing>'",
        f"{f}: rule #3 ('ok-rule'): option 'name' must be unique across all policy files "
        "but it's configured as 'ok-rule'",
        f"{f}: rule #3 ('ok-rule'): option 'match.path' must be {PATH} "
        "but it's configured as 'api/chat'",
        f"{f}: rule #3 ('ok-rule'): option 'require' must be {REQUIRE} "
        "but it's configured as 'publik'",
        f"{f}: rule #4 ('wildcards'): option 'match.path' must be {PATH} "
        "but it's configured as '/api/*.json'",
        f"{f}: rule #4 ('wildcards'): option 'match.methods' must be {METHODS} "
        "but it's configured as '[GET, FETCH]'",
        f"{f}: rule #4 ('wildcards'): option 'match.websocket' must be a boolean "
        "(true: only WebSocket handshakes, false: only plain HTTP) but it's configured as 'yes'",
        f"{f}: rule #4 ('wildcards'): option 'mode' must be one of 'enforce', 'shadow' "
        "but it's configured as 'audit'",
        f"{f}: rule #5 ('dots'): option 'match.path' must be {PATH} "
        "but it's configured as '/a/../b'",
        f"{f}: rule #5 ('dots'): option 'match.methods' must be {METHODS} "
        "but it's configured as '[get]'",
        f"{f}: rule #5 ('dots'): option 'body_user_id' must be {POINTER} "
        "but it's configured as 'sender'",
        f"{f}: rule #6 ('deny-pointer'): option 'body_user_id' must be absent on a 'deny' rule "
        "(it could never apply) but it's configured as '/sender'",
        f"{f}: rule #7 ('pointers'): option 'match.tls' is not a known option "
        "(known: path, methods, websocket)",
        f"{f}: rule #7 ('pointers'): option 'body_user_id' must be {POINTER} "
        "but it's configured as '/a~2b'",
        f"{f}: rule #7 ('pointers'): option 'body_user_id' must be {POINTER} "
        "but it's configured as '/'",
        f"{f}: rule #8 ('read-only'): option 'body_user_id' must be absent when 'match.methods' "
        "only has GET or HEAD (they carry no body) but it's configured as '/user'",
        f"{f}: rule #8 ('read-only'): option 'requires' is not a known option "
        "(known: name, description, match, require, body_user_id, mode)",
        f"{f}: rule #9 (''): the rule must be a mapping of options "
        "but it's configured as 'just a string'",
        f"{f}: rule #10 (''): option 'name' must be a non-empty string but it's configured as ''",
        f"{f}: rule #10 (''): option 'match' must be a mapping with 'path' and optional "
        "'methods', 'websocket' but it's configured as '<missing>'",
        f"{f}: rule #11 ('socket'): option 'match.path' must be {PATH} "
        "but it's configured as '/ws//x'",
        f"{f}: rule #11 ('socket'): option 'match.methods' must be absent or include 'GET' "
        "when 'websocket' is true but it's configured as '[POST]'",
    ]


def one_rule(**options: str) -> str:
    """A file with one rule; each option is given as its YAML text."""
    body = {"name": "r", "match": "{path: /r}", "require": "public", **options}
    lines = [f"    {key}: {value}" for key, value in body.items() if value != "-"]
    return "rules:\n  - " + "\n".join(lines)[4:] + "\n"


# One mistake per case: the option's YAML text (or "-" to remove it) and the exact message.
SINGLE_MISTAKES = [
    ({"name": "-"}, "rule #1 (''): option 'name' must be a non-empty string "
     "but it's configured as '<missing>'"),
    ({"name": "7"}, "rule #1 (''): option 'name' must be a non-empty string "
     "but it's configured as '7'"),
    ({"description": "[a, b]"}, "rule #1 ('r'): option 'description' must be a string "
     "but it's configured as '[a, b]'"),
    ({"match": "/r"}, "rule #1 ('r'): option 'match' must be a mapping with 'path' and optional "
     "'methods', 'websocket' but it's configured as '/r'"),
    ({"match": "{methods: [GET]}"}, f"rule #1 ('r'): option 'match.path' must be {PATH} "
     "but it's configured as '<missing>'"),
    ({"match": "{path: /a/**x}"}, f"rule #1 ('r'): option 'match.path' must be {PATH} "
     "but it's configured as '/a/**x'"),
    ({"match": "{path: '/a%2Fb'}"}, f"rule #1 ('r'): option 'match.path' must be {PATH} "
     "but it's configured as '/a%2Fb'"),
    ({"match": "{path: /r, methods: []}"}, f"rule #1 ('r'): option 'match.methods' must be "
     f"{METHODS} but it's configured as '[]'"),
    ({"match": "{path: /r, methods: GET}"}, f"rule #1 ('r'): option 'match.methods' must be "
     f"{METHODS} but it's configured as 'GET'"),
    ({"match": "{path: /r, methods: [GET, GET]}"}, f"rule #1 ('r'): option 'match.methods' "
     f"must be {METHODS} but it's configured as '[GET, GET]'"),
    ({"match": "{path: /r, websocket: 1}"}, "rule #1 ('r'): option 'match.websocket' must be "
     "a boolean (true: only WebSocket handshakes, false: only plain HTTP) "
     "but it's configured as '1'"),
    ({"match": "{path: /r, host: a}"}, "rule #1 ('r'): option 'match.host' is not a known "
     "option (known: path, methods, websocket)"),
    ({"require": "-"}, f"rule #1 ('r'): option 'require' must be {REQUIRE} "
     "but it's configured as '<missing>'"),
    ({"require": "Public"}, f"rule #1 ('r'): option 'require' must be {REQUIRE} "
     "but it's configured as 'Public'"),
    ({"require": "null"}, f"rule #1 ('r'): option 'require' must be {REQUIRE} "
     "but it's configured as 'null'"),
    ({"body_user_id": "[]"}, f"rule #1 ('r'): option 'body_user_id' must be {POINTER} "
     "but it's configured as '[]'"),
    ({"body_user_id": "/a~"}, f"rule #1 ('r'): option 'body_user_id' must be {POINTER} "
     "but it's configured as '/a~'"),
    ({"body_user_id": "{a: b}"}, f"rule #1 ('r'): option 'body_user_id' must be {POINTER} "
     "but it's configured as '{a: b}'"),
    ({"require": "deny", "body_user_id": "[/a, /b]"}, "rule #1 ('r'): option 'body_user_id' "
     "must be absent on a 'deny' rule (it could never apply) but it's configured as '[/a, /b]'"),
    ({"match": "{path: /r, methods: [HEAD]}", "body_user_id": "/a"}, "rule #1 ('r'): option "
     "'body_user_id' must be absent when 'match.methods' only has GET or HEAD "
     "(they carry no body) but it's configured as '/a'"),
    ({"mode": "Shadow"}, "rule #1 ('r'): option 'mode' must be one of 'enforce', 'shadow' "
     "but it's configured as 'Shadow'"),
    ({"policy": "deny"}, "rule #1 ('r'): option 'policy' is not a known option "
     "(known: name, description, match, require, body_user_id, mode)"),
]


@pytest.mark.parametrize(("options", "message"), SINGLE_MISTAKES)
def test_each_mistake_alone_gives_exactly_its_message(
    tmp_path: Path, options: dict[str, str], message: str
) -> None:
    write(tmp_path, "rules.yaml", one_rule(**options))
    assert errors_of(tmp_path) == [f"rules.yaml: {message}"]


def test_found_values_are_rendered_on_one_line_and_shortened(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", one_rule(require='"deny\\nplease"'))
    write(tmp_path, "b.yaml", one_rule(name="s", require="x" * 100))
    assert errors_of(tmp_path) == [
        f"a.yaml: rule #1 ('r'): option 'require' must be {REQUIRE} "
        "but it's configured as 'deny\\nplease'",
        f"b.yaml: rule #1 ('s'): option 'require' must be {REQUIRE} "
        f"but it's configured as '{'x' * 77}...'",
    ]


def test_the_websocket_exception_allows_a_body_rewrite_on_get(tmp_path: Path) -> None:
    write(tmp_path, "ws.yaml", one_rule(
        match="{path: /ws, methods: [GET], websocket: true}", body_user_id="/sender"))
    assert load_policies(tmp_path).rules[0].body_user_id == ("/sender",)


def test_duplicate_yaml_keys_are_errors_not_silent_overrides(tmp_path: Path) -> None:
    write(tmp_path, "dup.yaml", (
        "rules:\n"
        "  - name: a\n"
        "    match: {path: /a, path: /b}\n"
        "    require: public\n"
        "    require: deny\n"
    ))
    assert errors_of(tmp_path) == [
        "dup.yaml: invalid YAML at line 3, column 23: duplicate key 'path' "
        "(first defined at line 3)",
        "dup.yaml: invalid YAML at line 5, column 5: duplicate key 'require' "
        "(first defined at line 4)",
    ]


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    write(tmp_path, "merge.yaml", (
        "rules:\n"
        "  - &base {name: a, match: {path: /a}, require: public}\n"
        "  - <<: *base\n"
        "    name: b\n"
    ))
    assert [rule.name for rule in load_policies(tmp_path).rules] == ["a", "b"]


@pytest.mark.parametrize(("text", "message"), [
    ("rules:\n  - name: a\n    match: {path: /a\n    require: public\n",
     "invalid YAML at line 4, column 12: while parsing a flow mapping at line 3, "
     "expected ',' or '}', but got ':'"),
    ("rules:\n  - name: b\n\tmatch: x\n",
     "invalid YAML at line 3, column 1: found character '\\t' that cannot start any token"),
    ("rules: []\n---\nrules: []\n",
     "invalid YAML at line 2, column 1: expected a single document in the stream at line 1, "
     "but found another document"),
    ("rules: []\nx: \"\x07\"\n",
     "invalid YAML at line 2, column 5: unacceptable character #x0007: "
     "special characters are not allowed"),
    ("- name: x\n", "the file must be a mapping with 'rules' and optional 'default', "
     "'description' but it's configured as '[{name: x}]'"),
    ("rules: {name: x}\n", "option 'rules' must be a list of rules (it may be empty) "
     "but it's configured as '{name: x}'"),
    ("default: anonymous\n", "option 'rules' must be a list of rules (it may be empty) "
     "but it's configured as '<missing>'"),
])
def test_file_level_problems(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "p.yaml", text)
    assert errors_of(tmp_path) == [f"p.yaml: {message}"]


def test_a_file_that_is_not_utf8_is_reported_with_its_position(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"rules: []\ndescription: caf\xe9\n")
    assert errors_of(tmp_path) == [
        "latin1.yaml: invalid YAML at line 2, column 17: not valid UTF-8 (byte 0xe9)"
    ]


def test_duplicate_names_across_two_files(tmp_path: Path) -> None:
    write(tmp_path, "10-a.yaml", one_rule(name="chat"))
    write(tmp_path, "20-b.yml", one_rule(name="chat"))
    assert errors_of(tmp_path) == [
        "20-b.yml: rule #1 ('chat'): option 'name' must be unique across all policy files "
        "but it's configured as 'chat'"
    ]


def test_default_set_in_two_files(tmp_path: Path) -> None:
    write(tmp_path, "10-a.yaml", "default: deny\nrules: []\n")
    write(tmp_path, "20-b.yaml", "default: anonymous\nrules: []\n")
    assert errors_of(tmp_path) == [
        "20-b.yaml: option 'default' must be set in only one policy file "
        "but it's configured as 'anonymous'"
    ]


def test_errors_come_in_file_name_order(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", one_rule(name="b", require="x"))
    write(tmp_path, "a.yaml", one_rule(name="a", require="y"))
    assert [line.split(":")[0] for line in errors_of(tmp_path)] == ["a.yaml", "b.yaml"]


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert errors_of(missing) == [f"{missing}: the policy directory does not exist"]
    file = write(tmp_path, "file.yaml", "rules: []\n")
    assert errors_of(file) == [f"{file}: the policy directory is not a directory"]


def test_empty_directory_and_empty_file_deny_everything(tmp_path: Path) -> None:
    assert load_policies(tmp_path) == PolicySet(rules=(), default="deny", source=str(tmp_path))
    write(tmp_path, "empty.yaml", "# nothing yet\n")
    policies = load_policies(tmp_path)
    assert (policies.rules, policies.default, policies.files) == ((), "deny", ("empty.yaml",))
    assert policies.match("GET", "/") is None


def test_only_top_level_yaml_files_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    write(tmp_path / "examples", "ignored.yaml", "nonsense: [")
    write(tmp_path, ".editor-lock.yaml", "nonsense: [")
    write(tmp_path, "notes.txt", "nonsense: [")
    write(tmp_path, "20-b.yml", one_rule(name="b"))
    write(tmp_path, "10-a.yaml", one_rule(name="a"))
    policies = load_policies(tmp_path)
    assert policies.files == ("10-a.yaml", "20-b.yml")
    assert policies.source == str(tmp_path)


def test_rules_record_file_position_and_set_index(tmp_path: Path) -> None:
    write(tmp_path, "10-a.yaml", (
        "description: first\n"
        "default: anonymous\n"
        "rules:\n"
        "  - {name: a1, match: {path: /a}, require: public}\n"
        "  - name: a2\n"
        "    description: the second rule\n"
        "    match: {path: /b/*, methods: [POST, PUT], websocket: false}\n"
        "    require: otp\n"
        "    body_user_id: [/sender, /meta/~1user~0id]\n"
        "    mode: shadow\n"
    ))
    write(tmp_path, "20-b.yaml", "rules:\n  - {name: b1, match: {path: /**}, require: deny}\n")
    policies = load_policies(tmp_path)
    assert policies.default == "anonymous"
    assert policies.default_file == "10-a.yaml"
    assert policies.rules == (
        Rule(name="a1", file="10-a.yaml", position=1, index=0, pattern="/a", methods=None,
             websocket=None, require="public", body_user_id=(), mode="enforce"),
        Rule(name="a2", file="10-a.yaml", position=2, index=1, pattern="/b/*",
             methods=frozenset({"POST", "PUT"}), websocket=False, require="otp",
             body_user_id=("/sender", "/meta/~1user~0id"), mode="shadow",
             description="the second rule"),
        Rule(name="b1", file="20-b.yaml", position=1, index=2, pattern="/**", methods=None,
             websocket=None, require="deny", body_user_id=(), mode="enforce"),
    )
    assert policies.rules[1].where == "10-a.yaml rule #2"
