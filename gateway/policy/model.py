"""The loaded policy set: rules in set order, the default, and the compiled match index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from gateway.policy.matcher import Table, build_tables

PUBLIC: Final = "public"
ANONYMOUS: Final = "anonymous"
AUTHENTICATED: Final = "authenticated"
OTP: Final = "otp"
DENY: Final = "deny"
# The order is the documented one; messages list the choices in this order.
REQUIREMENTS: Final = (PUBLIC, ANONYMOUS, AUTHENTICATED, OTP, DENY)

ENFORCE: Final = "enforce"
SHADOW: Final = "shadow"
MODES: Final = (ENFORCE, SHADOW)

METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Requests with these methods carry no body, so a body rewrite could never apply to them.
BODYLESS_METHODS: Final = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Rule:
    """One validated rule; ``file`` and ``position`` say where a security team wrote it."""

    name: str
    file: str
    position: int  # 1-based in its file.
    index: int  # 0-based in the whole set; the first match is the lowest index.
    pattern: str
    methods: frozenset[str] | None
    websocket: bool | None
    require: str
    body_user_id: tuple[str, ...]
    mode: str
    description: str | None = None

    @property
    def where(self) -> str:
        """``FILE rule #N``, the same location the loader's messages use."""
        return f"{self.file} rule #{self.position}"


@dataclass(frozen=True)
class PolicySet:
    """Rules in set order (files by name, rules by position) and the default requirement.

    ``match`` is compiled once here: rules are filed under their first literal segment (rules
    starting with ``*`` or ``**`` under every segment), per method and WebSocket flag, so a
    request only tests the few rules that could apply, still in set order.
    """

    rules: tuple[Rule, ...]
    default: str = DENY
    source: str = ""
    files: tuple[str, ...] = ()
    default_file: str | None = None  # The file that set ``default``; None means built-in.
    _tables: dict[tuple[str | None, bool], Table] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tables", build_tables(self.rules, METHODS))

    def match(self, method: str, path: str, websocket: bool = False) -> Rule | None:
        """The first rule matching a canonical path, or None (then ``default`` applies).

        A WebSocket handshake is matched as ``GET`` with ``websocket=True``. Methods are
        compared exactly: ``HEAD`` is not implied by ``GET``.
        """
        table = self._tables.get((method, websocket))
        if table is None:
            table = self._tables[(None, bool(websocket))]
        buckets, fallback = table
        # The first segment, inlined: "" for "/", "api" for "/api" and "/api/chat".
        for test, rule in buckets.get(path[1:].partition("/")[0], fallback):
            if test(path):
                return rule
        return None
