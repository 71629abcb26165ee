"""Overwrite the user-id fields of JSON bodies (``body_user_id`` rules, CONTRACT §6).

Chat backends such as Rasa take the user from the body (``{"sender": ...}``), not from a header,
so the trusted id must be written there too. A body the gateway cannot read exactly one way is
refused instead of forwarded: duplicate keys in particular, because the backend's JSON parser may
keep the other copy than the one we overwrote.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gateway.errors import BadRequest, UnsupportedMediaType


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BadRequest("The JSON body has a duplicate key.", reason="json_duplicate_key")
        result[key] = value
    return result


def _reject_constant(_: str) -> Any:
    # NaN and Infinity are not JSON; backends disagree on them.
    raise BadRequest("The JSON body is not valid JSON.", reason="json_invalid")


def is_json_content_type(content_type: bytes | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def parse_pointer(pointer: str) -> list[str]:
    """RFC 6901 pointer → reference tokens (validated by the policy loader)."""
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def overwrite_user_id(
    body: bytes, content_type: bytes | None, pointers: Sequence[str], user_id: str
) -> bytes:
    """Return ``body`` with every pointer set to ``user_id`` (created where absent)."""
    if not is_json_content_type(content_type):
        raise UnsupportedMediaType()
    document = load_object(body)
    set_pointers(document, pointers, user_id)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def load_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object strictly (UTF-8, no duplicate keys, no NaN), or raise BadRequest."""
    try:
        text = body.decode("utf-8")
        document = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest("The JSON body is not valid JSON.", reason="json_invalid") from exc
    if not isinstance(document, dict):
        raise BadRequest("The JSON body must be an object.", reason="json_not_object")
    return document


def set_pointers(document: dict[str, Any], pointers: Sequence[str], user_id: str) -> None:
    for pointer in pointers:
        tokens = parse_pointer(pointer)
        target: Any = document
        for token in tokens[:-1]:
            child = target.get(token)
            if child is None:
                child = {}
                target[token] = child
            elif not isinstance(child, dict):
                # Overwriting a scalar or list with an object would change the message's shape
                # in a way the backend does not expect; refuse the request instead.
                raise BadRequest(
                    "The JSON body has a non-object where the user id belongs.",
                    reason="json_pointer_conflict",
                )
            target = child
        target[tokens[-1]] = user_id


def remove_user_id(body: bytes, content_type: bytes | None, pointers: Sequence[str]) -> bytes:
    """Return ``body`` without the user-id fields (a route with no trusted id to write)."""
    if not is_json_content_type(content_type):
        raise UnsupportedMediaType()
    document = load_object(body)
    remove_pointers(document, pointers)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def remove_pointers(document: dict[str, Any], pointers: Sequence[str]) -> None:
    for pointer in pointers:
        tokens = parse_pointer(pointer)
        target: Any = document
        for token in tokens[:-1]:
            target = target.get(token) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target.pop(tokens[-1], None)
