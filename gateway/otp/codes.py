"""One-time codes: how they are made, kept and compared.

A code exists in clear only in the outgoing message; the :class:`Challenge` record holds it as
a digest. The store keeps a keyed hash bound to its
challenge id, so a dump of the store cannot be turned back into codes (there are only a million
six-digit codes, so an unkeyed hash would be reversed in milliseconds), and a digest copied to
another challenge does not verify there. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass
from typing import TypeGuard

CODE_DIGITS = 6

# ``\d`` would also match Arabic-Indic or fullwidth digits, and ``$`` would accept a trailing
# newline, so the pattern names the ASCII digits and is applied with ``fullmatch``.
_CODE = re.compile(r"[0-9]{6}")


def new_code() -> str:
    """A fresh code from the operating system's CSPRNG, zero-padded to six digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_digest(key: bytes, challenge_id: str, code: str) -> str:
    """HMAC-SHA256 (hex) over ``challenge_id:code``: the only form in which a code is stored."""
    message = f"{challenge_id}:{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def codes_match(key: bytes, challenge_id: str, code: str, digest: str) -> bool:
    """Whether ``code`` is the one behind ``digest``, compared in constant time."""
    return hmac.compare_digest(code_digest(key, challenge_id, code), digest)


def is_well_formed(value: object) -> TypeGuard[str]:
    """True only for a ``str`` of exactly six ASCII digits.

    The value comes straight from a JSON body, so anything else (numbers, booleans, null,
    lists, padded or non-ASCII digits) is refused before it can reach a counter or a hash.
    """
    # ``type(...) is str`` also refuses str subclasses, whose comparisons could be overridden.
    return type(value) is str and _CODE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Challenge:
    """A sent code as the store keeps it: bound to one user, with the code only as a digest."""

    id: str
    user_id: str
    digest: str  # for a decoy, the digest of "decoy", which no six-digit code matches
    channel: str
    expires_at: float  # on the OTP service's clock

    def dump(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def load(cls, raw: bytes | None) -> Challenge | None:
        if raw is None:
            return None
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError):
            # A record this version cannot read is no challenge: failing closed is safe.
            return None
