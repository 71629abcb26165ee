"""A JWT read before its signature is checked: its shape, its header and its JSON segments.

Everything here handles attacker-controlled bytes while no key has been chosen yet, so it is
kept apart from the verifier: it can only refuse, never vouch. What it lets through of the
header (``alg``, ``kid``) and the payload (``iss``) is used only as a lookup in our own
configuration. :func:`reject` is the one way every stage of verification refuses a token.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Final, NoReturn

from gateway.errors import TokenInvalid
from gateway.identity.jwt_config import SUPPORTED_ALGORITHMS

# Three unpadded base64url segments, none empty. RFC 7515 forbids padding, yet PyJWT accepts
# it: that would give one signed token several spellings, and let it dodge anything keyed by
# the token string (our cache, an operator's denylist).
_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def reject(reason: str) -> NoReturn:
    raise TokenInvalid(reason=reason)


def parse_unverified(token: str, max_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    # The length check comes first so the pattern never scans an oversized input.
    if len(token) > max_bytes or _SHAPE.fullmatch(token) is None:
        reject("malformed")
    header_segment, payload_segment, _ = token.split(".")
    header = _json_segment(header_segment)
    alg = header.get("alg")
    if not isinstance(alg, str):
        reject("malformed")
    # We implement no critical extension, so RFC 7515 §4.1.11 says refuse any "crit".
    if "crit" in header:
        reject("crit_unsupported")
    if alg.lower() == "none" or alg not in SUPPORTED_ALGORITHMS:
        reject("alg_mismatch")
    if "kid" in header and not isinstance(header["kid"], str):
        reject("malformed")
    return header, _json_segment(payload_segment)


class _DuplicateMemberError(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may pick different copies of a repeated member ("sub" twice); refuse both.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateMemberError
    return result


def _no_constants(name: str) -> NoReturn:
    # NaN compares false with everything, so an "exp": NaN would never expire.
    raise ValueError(name)


# One decoder, built once: ``json.loads`` with hooks would build (and compile) one per call.
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constants)


def _json_segment(segment: str) -> dict[str, Any]:
    if len(segment) % 4 == 1:
        reject("malformed")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        # RFC 7519 §7.2: the JSON is UTF-8; other encodings are not guessed at.
        value = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        reject("malformed")
    if not isinstance(value, dict):
        reject("malformed")
    return value
