"""Strict YAML reading shared by the settings and policy loaders.

Both are edited by people, not programs, so both get the same treatment: duplicate keys are
errors (plain YAML keeps the last one silently, turning a typo into a rule nobody reads), a
byte-order mark is accepted, and every problem is reported as
``FILE: invalid YAML at line L, column C: PROBLEM``. The pure-Python loader is used, never
libyaml's, so the texts do not depend on how PyYAML was built.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any, Final

import yaml

FMT_YAML: Final = "{file}: invalid YAML at line {line}, column {column}: {problem}"
FMT_UNREADABLE: Final = "{file}: the file cannot be read: {problem}"
FMT_DUPLICATE_KEY: Final = "duplicate key '{key}' (first defined at line {line})"


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate keys, which plain YAML silently lets override."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, int, str, int]] = []

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            # Merge keys ("<<") are meant to be overridden, so only written keys are compared.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            if not isinstance(key, Hashable):
                continue
            mark = key_node.start_mark
            if key in seen:
                self.duplicates.append((mark.line + 1, mark.column + 1, _show(key), seen[key]))
            else:
                seen[key] = mark.line + 1
        return super().construct_mapping(node, deep=deep)


class TextLoader(StrictLoader):
    """Numbers stay text: ``+4915112345678`` must keep its "+", and ``12345:`` is an id."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's own per-class table
        first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":int", ":float"))]
        for first, resolvers in StrictLoader.yaml_implicit_resolvers.items()
    }


def _show(key: object) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def read_yaml_file(path: Path, file: str) -> tuple[Any, list[str]]:
    """(data, errors) for the file at ``path``, named ``file`` in messages.

    ``data`` is None when the file could not be parsed (or is empty); duplicate keys are
    reported in ``errors`` while the parsed data is still returned.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [FMT_UNREADABLE.format(file=file, problem=exc.strerror or exc)]
    try:
        # "utf-8-sig" drops the byte-order mark some Windows editors write.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Valid up to the bad byte, so the prefix decodes; columns count characters, as YAML's.
        prefix = raw[: exc.start].decode("utf-8-sig")
        line, column = _position(prefix, len(prefix))
        problem = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})"
        return None, [FMT_YAML.format(file=file, line=line, column=column, problem=problem)]
    return parse_yaml(text, file)


def parse_yaml(
    text: str, file: str, loader_class: type[StrictLoader] = StrictLoader
) -> tuple[Any, list[str]]:
    """(data, errors) for YAML ``text``, as :func:`read_yaml_file` describes."""
    try:
        # The reader checks for forbidden characters as soon as the loader is built.
        loader = loader_class(text)
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        problem = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        return None, [FMT_YAML.format(file=file, line=line, column=column, problem=problem)]
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        return None, [_yaml_error(file, exc)]
    finally:
        loader.dispose()
    # Outer mappings are built before the mappings nested in them; report in reading order.
    errors = [
        FMT_YAML.format(file=file, line=line, column=column,
                        problem=FMT_DUPLICATE_KEY.format(key=key, line=first))
        for line, column, key, first in sorted(loader.duplicates)
    ]
    return data, errors


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset``, counted as YAML marks are."""
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def _yaml_error(file: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "unknown problem"
    if exc.context and exc.problem and exc.context_mark is not None:
        # PyYAML phrases the context as the start of the sentence ("while parsing a flow
        # mapping", "expected a single document in the stream").
        problem = f"{exc.context} at line {exc.context_mark.line + 1}, {exc.problem}"
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return FMT_YAML.format(file=file, line=line, column=column, problem=problem)
