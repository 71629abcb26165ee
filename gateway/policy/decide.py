"""The decision: does a caller at some level meet what a rule requires?

A pure function over two small vocabularies, so every answer is computed once, at import, and
``decide`` is a dictionary lookup on the hot path. The caller raises ``decision.error`` when the
request is refused (or only logs it for a ``mode: shadow`` rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.errors import Forbidden, GatewayError, OtpRequired, TokenMissing
from gateway.identity.model import ANONYMOUS, AUTHENTICATED, LEVEL_RANK, OTP
from gateway.policy.model import DENY, PUBLIC, REQUIREMENTS


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome: ``error`` is None exactly when ``allowed``; ``why`` is one sentence."""

    allowed: bool
    error: type[GatewayError] | None
    why: str


LEVELS: Final[tuple[str | None, ...]] = (None, ANONYMOUS, AUTHENTICATED, OTP)


def _compute(require: str, level: str | None) -> Decision:
    if require == DENY:
        return Decision(False, Forbidden, "policy denies this route")
    if require == PUBLIC:
        return Decision(True, None, "the route is public: no credentials are needed")
    if level is not None and LEVEL_RANK[level] >= LEVEL_RANK[require]:
        return Decision(True, None, f"the route requires {require!r} and the caller is {level!r}")
    short = (
        "the request carries no credentials" if level is None else f"the caller is only {level!r}"
    )
    why = f"the route requires {require!r} but {short}"
    if require == OTP:
        # RFC 9470 step-up: the client must verify a one-time code, whatever it holds now.
        return Decision(False, OtpRequired, why)
    # Below 'authenticated' (or without any session on an 'anonymous' route) the client has to
    # present credentials, which is what 401 token_missing asks for.
    return Decision(False, TokenMissing, why)


_TABLE: Final[dict[tuple[str, str | None], Decision]] = {
    (require, level): _compute(require, level) for require in REQUIREMENTS for level in LEVELS
}


def decide(require: str, level: str | None) -> Decision:
    """Whether a caller at ``level`` (None: no credentials at all) meets ``require``.

    Raises KeyError for a requirement or level outside the vocabularies: the loader and the
    identity stage only produce known values, so anything else is a bug, not a refusal.
    """
    return _TABLE[(require, level)]
