"""The value the identity stage hands to the policy and rewrite stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

ANONYMOUS: Final = "anonymous"
AUTHENTICATED: Final = "authenticated"
OTP: Final = "otp"

# Levels are ordered: a route that needs ``authenticated`` accepts ``otp`` too.
LEVEL_RANK: Final[dict[str, int]] = {ANONYMOUS: 1, AUTHENTICATED: 2, OTP: 3}


def is_valid_user_id(value: object) -> bool:
    """1–255 characters of visible ASCII (``!``–``~``): the id travels in a header."""
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        return False
    return all("!" <= ch <= "~" for ch in value)


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller the gateway vouches for.

    ``expires_at`` is when this identity stops being valid (the token's ``exp``), in epoch
    seconds; caches re-check it on every hit.
    """

    user_id: str
    level: str
    expires_at: float
    email: str | None = None
    name: str | None = None
    issuer: str | None = None
    anonymous_id: str | None = None
    claims: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def meets(self, required: str) -> bool:
        return LEVEL_RANK[self.level] >= LEVEL_RANK[required]
