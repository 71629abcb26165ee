"""The texts a security team reads when a policy is wrong (CONTRACT §4).

Kept as constants, apart from the loader's logic, so the wording is reviewed in one place and
tests assert it exactly: the expected part of a message is fixed; only the location and the
found value vary.
"""

from __future__ import annotations

from typing import Final

# Message formats. Positions are 1-based; FILE is the name inside the policy directory.
FMT_RULE: Final = (
    "{file}: rule #{position} ('{name}'): option '{option}' must be {expected} "
    "but it's configured as '{found}'"
)
FMT_RULE_UNKNOWN: Final = (
    "{file}: rule #{position} ('{name}'): option '{option}' is not a known option "
    "(known: {known})"
)
FMT_RULE_SHAPE: Final = (
    "{file}: rule #{position} (''): the rule must be {expected} but it's configured as '{found}'"
)
FMT_FILE: Final = "{file}: option '{option}' must be {expected} but it's configured as '{found}'"
FMT_FILE_UNKNOWN: Final = "{file}: option '{option}' is not a known option (known: {known})"
FMT_FILE_SHAPE: Final = "{file}: the file must be {expected} but it's configured as '{found}'"
FMT_NO_DIRECTORY: Final = "{directory}: the policy directory does not exist"
FMT_NOT_DIRECTORY: Final = "{directory}: the policy directory is not a directory"

# Expected parts.
EXPECT_REQUIRE: Final = "one of 'public', 'anonymous', 'authenticated', 'otp', 'deny'"
EXPECT_DEFAULT_ONCE: Final = "set in only one policy file"
EXPECT_MODE: Final = "one of 'enforce', 'shadow'"
EXPECT_NAME: Final = "a non-empty string"
EXPECT_NAME_UNIQUE: Final = "unique across all policy files"
EXPECT_TEXT: Final = "a string"
EXPECT_MATCH: Final = "a mapping with 'path' and optional 'methods', 'websocket'"
EXPECT_PATH: Final = "a path pattern starting with '/' (segments: literals, '*' or '**')"
EXPECT_METHODS: Final = (
    "a non-empty list of distinct methods among "
    "'GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'"
)
EXPECT_METHODS_WEBSOCKET: Final = "absent or include 'GET' when 'websocket' is true"
EXPECT_WEBSOCKET: Final = "a boolean (true: only WebSocket handshakes, false: only plain HTTP)"
EXPECT_POINTER: Final = "a JSON pointer such as '/sender', or a non-empty list of them"
EXPECT_POINTER_DENY: Final = "absent on a 'deny' rule (it could never apply)"
EXPECT_POINTER_BODYLESS: Final = (
    "absent when 'match.methods' only has GET or HEAD (they carry no body)"
)
EXPECT_RULES: Final = "a list of rules (it may be empty)"
EXPECT_FILE: Final = "a mapping with 'rules' and optional 'default', 'description'"
EXPECT_RULE: Final = "a mapping of options"

FILE_KEYS: Final = ("rules", "default", "description")
RULE_KEYS: Final = ("name", "description", "match", "require", "body_user_id", "mode")
MATCH_KEYS: Final = ("path", "methods", "websocket")
SUFFIXES: Final = (".yaml", ".yml")
