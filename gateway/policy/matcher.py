"""Path patterns: syntax check, compilation, and the first-segment index used by ``match``.

A pattern is split into segments the same way a canonical request path is: ``"/"`` has no
segments, ``"/a/b/"`` has ``("a", "b", "")``. A literal segment matches itself, ``*`` matches
exactly one non-empty segment and ``**`` matches any number of segments, including none.

Matching runs on every request, so each pattern is compiled once into the cheapest test that is
equivalent to the segment-wise definition: a string comparison for literal patterns, a prefix
test for ``/literal/.../**``, and the general segment matcher only for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from gateway.policy.model import Rule

PathTest = Callable[[str], bool]
Candidate = tuple[PathTest, "Rule"]
# One lookup table per (method, websocket): candidates by the path's first segment, and the
# candidates for a first segment no literal-first rule names (only wildcard-first rules).
Table = tuple[dict[str, tuple[Candidate, ...]], tuple[Candidate, ...]]

ONE: Final = "*"
ANY: Final = "**"

# The characters RFC 3986 allows in a path segment, without percent-encoding: the canonical
# path never contains "%", so a pattern holding one could never match anything.
_LITERAL = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,=:@]+")


def split_path(path: str) -> tuple[str, ...]:
    """Segments of a pattern or canonical path; ``"/"`` has none."""
    if path == "/":
        return ()
    return tuple(path[1:].split("/"))


def is_valid_pattern(pattern: str) -> bool:
    """Whether ``pattern`` follows the syntax in policies/README.md."""
    if not pattern.startswith("/"):
        return False
    segments = split_path(pattern)
    last = len(segments) - 1
    for position, segment in enumerate(segments):
        if segment == "":
            # Only a single trailing slash may leave an empty segment, and "/" has none at all.
            if position != last or last == 0:
                return False
            continue
        if segment in (ONE, ANY):
            continue
        if segment in (".", "..") or "*" in segment or not _LITERAL.fullmatch(segment):
            return False
    return True


def glob_segments(pattern: Sequence[str], segments: Sequence[str]) -> bool:
    """Segment-wise match with backtracking to the last ``**`` only.

    Backtracking to the most recent ``**`` is enough because every other token consumes exactly
    one segment; this is the classic wildcard algorithm and runs in O(len(p) * len(s)).
    """
    p = s = 0
    star_p = -1
    star_s = 0
    n_pattern = len(pattern)
    n_segments = len(segments)
    while s < n_segments:
        if p < n_pattern:
            token = pattern[p]
            if token == ANY:
                star_p, star_s = p, s
                p += 1
                continue
            segment = segments[s]
            if segment == token or (token == ONE and segment != ""):
                p += 1
                s += 1
                continue
        if star_p < 0:
            return False
        star_s += 1
        s = star_s
        p = star_p + 1
    while p < n_pattern and pattern[p] == ANY:
        p += 1
    return p == n_pattern


def _always(path: str) -> bool:
    return True


def compile_pattern(pattern: str) -> PathTest:
    """A function telling whether a canonical path matches ``pattern`` (assumed valid)."""
    if "*" not in pattern:
        # No wildcard: two paths split into the same segments exactly when they are equal.
        return pattern.__eq__
    if pattern.endswith("/**") and "*" not in pattern[:-3]:
        base = pattern[:-3]
        if base == "":
            return _always
        prefix = base + "/"

        def prefix_test(path: str) -> bool:
            return path.startswith(prefix) or path == base

        return prefix_test
    tokens = split_path(pattern)

    def segment_test(path: str) -> bool:
        return glob_segments(tokens, split_path(path))

    return segment_test


def first_segment_key(pattern: str) -> str | None:
    """The index key of a pattern: its first literal segment, or None for a wildcard."""
    segments = split_path(pattern)
    if not segments:
        return ""
    first = segments[0]
    return None if first in (ONE, ANY) else first


def path_key(path: str) -> str:
    """The index key of a canonical path (``""`` for ``"/"``)."""
    return path[1:].partition("/")[0]


def build_tables(
    rules: Iterable[Rule], methods: Iterable[str]
) -> dict[tuple[str | None, bool], Table]:
    """One table per known method (plus None for any other method) and WebSocket flag.

    Filtering by method and WebSocket at build time keeps the per-request loop down to path
    tests. Rules keep their set order inside every bucket, so the first hit is the first match.
    """
    compiled = [(rule, compile_pattern(rule.pattern), first_segment_key(rule.pattern))
                for rule in rules]
    keys = {key for _, _, key in compiled if key is not None}
    tables: dict[tuple[str | None, bool], Table] = {}
    for method in (*methods, None):
        for websocket in (False, True):
            buckets: dict[str, list[Candidate]] = {key: [] for key in keys}
            fallback: list[Candidate] = []
            for rule, test, key in compiled:
                if rule.methods is not None and method not in rule.methods:
                    continue
                if rule.websocket is not None and rule.websocket != websocket:
                    continue
                if key is None:
                    fallback.append((test, rule))
                    for bucket in buckets.values():
                        bucket.append((test, rule))
                else:
                    buckets[key].append((test, rule))
            tables[(method, websocket)] = (
                {key: tuple(bucket) for key, bucket in buckets.items()},
                tuple(fallback),
            )
    return tables


def rule_matches(rule: Rule, method: str, path: str, websocket: bool = False) -> bool:
    """Whether one rule matches, without the index (for ``explain``, not the hot path)."""
    if rule.methods is not None and method not in rule.methods:
        return False
    if rule.websocket is not None and rule.websocket != websocket:
        return False
    return glob_segments(split_path(rule.pattern), split_path(path))
