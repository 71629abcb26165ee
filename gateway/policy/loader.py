"""Load a policy directory and validate it, collecting every problem before refusing it.

Security teams fix a policy faster when they see all of its mistakes at once, so nothing here
stops at the first error: each one becomes a line in the CONTRACT §4 format, built from the
constants below (the expected part is fixed; only the location and the found value vary).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gateway.errors import PolicyLoadError
from gateway.policy.matcher import is_valid_pattern
from gateway.policy.messages import (
    EXPECT_DEFAULT_ONCE,
    EXPECT_FILE,
    EXPECT_MATCH,
    EXPECT_METHODS,
    EXPECT_METHODS_WEBSOCKET,
    EXPECT_MODE,
    EXPECT_NAME,
    EXPECT_NAME_UNIQUE,
    EXPECT_PATH,
    EXPECT_POINTER,
    EXPECT_POINTER_BODYLESS,
    EXPECT_POINTER_DENY,
    EXPECT_REQUIRE,
    EXPECT_RULE,
    EXPECT_RULES,
    EXPECT_TEXT,
    EXPECT_WEBSOCKET,
    FILE_KEYS,
    FMT_FILE,
    FMT_FILE_SHAPE,
    FMT_FILE_UNKNOWN,
    FMT_NO_DIRECTORY,
    FMT_NOT_DIRECTORY,
    FMT_RULE,
    FMT_RULE_SHAPE,
    FMT_RULE_UNKNOWN,
    MATCH_KEYS,
    RULE_KEYS,
    SUFFIXES,
)
from gateway.policy.model import (
    BODYLESS_METHODS,
    DENY,
    ENFORCE,
    METHODS,
    MODES,
    REQUIREMENTS,
    PolicySet,
    Rule,
)
from gateway.yamlio import read_yaml_file

# RFC 6901: "/"-separated reference tokens in which "~" only starts "~0" or "~1". Every group
# begins with "/" and no token contains one, so the pattern cannot backtrack badly.
_POINTER = re.compile(r"(?:/(?:[^~/]|~[01])*)+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_FOUND = 80


class _Missing(enum.Enum):
    MISSING = "<missing>"


MISSING: Final = _Missing.MISSING


def render(value: object) -> str:
    """The found part of a message: compact, one line, YAML-like, at most 80 characters."""
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], _render(value, top=True))
    return text if len(text) <= _MAX_FOUND else text[: _MAX_FOUND - 3] + "..."


def _render(value: object, top: bool = False) -> str:
    if value is MISSING:
        return "<missing>"
    if isinstance(value, str):
        return value if top or value else "''"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_render(k)}: {_render(v)}" for k, v in value.items()) + "}"
    return str(value)


def is_valid_pointer(value: object) -> bool:
    """An RFC 6901 pointer that names a member, so not "" (the whole body) and not "/"."""
    return isinstance(value, str) and value != "/" and _POINTER.fullmatch(value) is not None


@dataclass
class _Collector:
    """What loading has found so far, across files in name order."""

    errors: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    default: str | None = None
    default_file: str | None = None


def load_policies(directory: str | Path) -> PolicySet:
    """Load every ``*.yaml``/``*.yml`` file of ``directory`` (not its subfolders).

    Raises PolicyLoadError listing every problem. Hidden files (editor locks, swap files) are
    skipped because they are never meant as policy.
    """
    root = Path(directory)
    if not root.exists():
        raise PolicyLoadError([FMT_NO_DIRECTORY.format(directory=root)])
    if not root.is_dir():
        raise PolicyLoadError([FMT_NOT_DIRECTORY.format(directory=root)])
    paths = sorted(
        (p for p in root.iterdir()
         if p.suffix in SUFFIXES and not p.name.startswith(".") and p.is_file()),
        key=lambda p: p.name,
    )
    found = _Collector()
    for path in paths:
        _check_file(found, path.name, _parse(found, path))
    if found.errors:
        raise PolicyLoadError(found.errors)
    return PolicySet(
        rules=tuple(found.rules),
        default=found.default or DENY,
        source=str(root),
        files=tuple(p.name for p in paths),
        default_file=found.default_file,
    )


def _parse(found: _Collector, path: Path) -> object:
    """The file's YAML data; on a problem, record it and return MISSING."""
    data, errors = read_yaml_file(path, path.name)
    found.errors.extend(errors)
    return MISSING if errors and data is None else data


def _check_file(found: _Collector, file: str, data: object) -> None:
    if data is None or data is MISSING:
        return  # An empty file (or only comments) is a valid, empty set.
    if not isinstance(data, dict):
        found.errors.append(FMT_FILE_SHAPE.format(file=file, expected=EXPECT_FILE,
                                                  found=render(data)))
        return
    errors = found.errors
    if "default" in data:
        default = data["default"]
        if not isinstance(default, str) or default not in REQUIREMENTS:
            errors.append(FMT_FILE.format(file=file, option="default", expected=EXPECT_REQUIRE,
                                          found=render(default)))
        elif found.default_file is not None:
            errors.append(FMT_FILE.format(file=file, option="default",
                                          expected=EXPECT_DEFAULT_ONCE, found=default))
        else:
            found.default, found.default_file = default, file
    if "description" in data and not isinstance(data["description"], str):
        errors.append(FMT_FILE.format(file=file, option="description", expected=EXPECT_TEXT,
                                      found=render(data["description"])))
    for key in data:
        if key not in FILE_KEYS:
            errors.append(FMT_FILE_UNKNOWN.format(file=file, option=render(key),
                                                  known=", ".join(FILE_KEYS)))
    rules = data.get("rules", MISSING)
    if not isinstance(rules, list):
        errors.append(FMT_FILE.format(file=file, option="rules", expected=EXPECT_RULES,
                                      found=render(rules)))
        return
    for position, raw in enumerate(rules, start=1):
        _RuleChecker(found, file, position, raw).check()


class _RuleChecker:
    """Validates one rule; appends a Rule to the set only when it has no problem."""

    def __init__(self, found: _Collector, file: str, position: int, raw: object) -> None:
        self.found, self.file, self.position, self.raw = found, file, position, raw
        name = raw.get("name") if isinstance(raw, dict) else None
        self.name = name if isinstance(name, str) else ""

    def invalid(self, option: str, expected: str, value: object) -> None:
        self.found.errors.append(FMT_RULE.format(
            file=self.file, position=self.position, name=self.name, option=option,
            expected=expected, found=render(value)))

    def unknown(self, option: object, known: tuple[str, ...]) -> None:
        self.found.errors.append(FMT_RULE_UNKNOWN.format(
            file=self.file, position=self.position, name=self.name, option=render(option),
            known=", ".join(known)))

    def check(self) -> None:
        raw = self.raw
        if not isinstance(raw, dict):
            self.found.errors.append(FMT_RULE_SHAPE.format(
                file=self.file, position=self.position, expected=EXPECT_RULE, found=render(raw)))
            return
        before = len(self.found.errors)
        name = raw.get("name", MISSING)
        if not isinstance(name, str) or not name.strip():
            self.invalid("name", EXPECT_NAME, name)
        elif name in self.found.names:
            self.invalid("name", EXPECT_NAME_UNIQUE, name)
        else:
            self.found.names.add(name)
        description = raw.get("description")
        if "description" in raw and not isinstance(description, str):
            self.invalid("description", EXPECT_TEXT, description)
        pattern, methods, websocket = self.check_match(raw.get("match", MISSING))
        require = raw.get("require", MISSING)
        if not isinstance(require, str) or require not in REQUIREMENTS:
            self.invalid("require", EXPECT_REQUIRE, require)
        pointers = self.check_pointers(raw, require, methods, websocket)
        mode = raw.get("mode", ENFORCE)
        if not isinstance(mode, str) or mode not in MODES:
            self.invalid("mode", EXPECT_MODE, mode)
        for key in raw:
            if key not in RULE_KEYS:
                self.unknown(key, RULE_KEYS)
        if len(self.found.errors) == before and pattern is not None:
            self.found.rules.append(Rule(
                name=self.name, file=self.file, position=self.position,
                index=len(self.found.rules), pattern=pattern, methods=methods,
                websocket=websocket, require=require, body_user_id=pointers, mode=mode,
                description=description))

    def check_match(self, match: object) -> tuple[str | None, frozenset[str] | None, bool | None]:
        if not isinstance(match, dict):
            self.invalid("match", EXPECT_MATCH, match)
            return None, None, None
        pattern = match.get("path", MISSING)
        if not isinstance(pattern, str) or not is_valid_pattern(pattern):
            self.invalid("match.path", EXPECT_PATH, pattern)
            pattern = None
        methods = None
        if "methods" in match:
            listed = match["methods"]
            if (not isinstance(listed, list) or not listed
                    or any(not isinstance(m, str) or m not in METHODS for m in listed)
                    or len(set(listed)) != len(listed)):
                self.invalid("match.methods", EXPECT_METHODS, listed)
            else:
                methods = frozenset(listed)
        websocket = match.get("websocket")
        if "websocket" in match and not isinstance(websocket, bool):
            self.invalid("match.websocket", EXPECT_WEBSOCKET, websocket)
            websocket = None
        # A WebSocket handshake is a GET, so a rule for handshakes without GET never matches.
        if websocket is True and methods is not None and "GET" not in methods:
            self.invalid("match.methods", EXPECT_METHODS_WEBSOCKET, match["methods"])
        for key in match:
            if key not in MATCH_KEYS:
                self.unknown(f"match.{render(key)}", MATCH_KEYS)
        return pattern, methods, websocket

    def check_pointers(self, raw: dict[Any, Any], require: object,
                       methods: frozenset[str] | None, websocket: bool | None) -> tuple[str, ...]:
        if "body_user_id" not in raw:
            return ()
        value = raw["body_user_id"]
        pointers = [value] if isinstance(value, str) else value
        if not isinstance(pointers, list) or not pointers:
            self.invalid("body_user_id", EXPECT_POINTER, value)
            return ()
        bad = [p for p in pointers if not is_valid_pointer(p)]
        for pointer in bad:
            self.invalid("body_user_id", EXPECT_POINTER, pointer)
        if bad:
            return ()
        # A rewrite that can never happen would give a false sense of safety, so it is refused.
        if require == DENY:
            self.invalid("body_user_id", EXPECT_POINTER_DENY, value)
        elif methods is not None and methods <= BODYLESS_METHODS and websocket is not True:
            self.invalid("body_user_id", EXPECT_POINTER_BODYLESS, value)
        return tuple(pointers)
