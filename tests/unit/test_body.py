from __future__ import annotations

import json

import pytest

from gateway.errors import BadRequest, UnsupportedMediaType
from gateway.rewrite.body import overwrite_user_id, remove_user_id

JSON = b"application/json"


def test_overwrites_and_creates_pointers() -> None:
    body = b'{"sender": "mallory", "from": {"name": "x"}, "text": "hi \xc3\xa9"}'
    out = overwrite_user_id(body, JSON, ["/sender", "/from/id", "/meta/user"], "alice")
    assert json.loads(out) == {
        "sender": "alice",
        "from": {"name": "x", "id": "alice"},
        "text": "hi é",
        "meta": {"user": "alice"},
    }


def test_pointer_escapes() -> None:
    out = overwrite_user_id(b"{}", JSON, ["/a~1b/c~0d"], "u1")
    assert json.loads(out) == {"a/b": {"c~d": "u1"}}


@pytest.mark.parametrize(
    "content_type",
    [b"application/json; charset=utf-8", b"Application/JSON", b"application/activity+json"],
)
def test_json_media_types(content_type: bytes) -> None:
    assert json.loads(overwrite_user_id(b"{}", content_type, ["/s"], "u")) == {"s": "u"}


@pytest.mark.parametrize("content_type", [None, b"text/plain", b"application/jsonx", b""])
def test_non_json_is_415(content_type: bytes | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        overwrite_user_id(b"{}", content_type, ["/s"], "u")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "json_invalid"),
        (b"{", "json_invalid"),
        (b'{"a": 1, "a": 2}', "json_duplicate_key"),
        (b'{"x": {"a": 1, "a": 2}}', "json_duplicate_key"),
        (b"[]", "json_not_object"),
        (b'"s"', "json_not_object"),
        (b"null", "json_not_object"),
        (b'{"a": Infinity}', "json_invalid"),
        (b"\xff", "json_invalid"),
        (b'{"meta": [1]}', "json_pointer_conflict"),
        (b"[" * 100000 + b"]" * 100000, "json_invalid"),
    ],
)
def test_unreadable_bodies_are_400(body: bytes, reason: str) -> None:
    with pytest.raises(BadRequest) as caught:
        overwrite_user_id(body, JSON, ["/meta/user"], "u")
    assert caught.value.reason == reason
    assert caught.value.status == 400


def test_remove_pointers_drops_client_chosen_ids() -> None:
    out = remove_user_id(
        b'{"sender": "admin", "from": {"id": "x", "n": 1}}',
        JSON,
        ["/sender", "/from/id", "/absent/deep"],
    )
    assert json.loads(out) == {"from": {"n": 1}}
