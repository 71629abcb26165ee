from __future__ import annotations

import pytest

from gateway.errors import BadRequest
from gateway.policy.paths import canonical_path, encode_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/", "/"),
        (b"/api/chat", "/api/chat"),
        (b"/api/chat/", "/api/chat/"),
        (b"/%61pi/%43hat", "/api/Chat"),
        (b"/a/b-c_d.e~f", "/a/b-c_d.e~f"),
        (b"/files/a.b..c", "/files/a.b..c"),
    ],
)
def test_accepted_paths_decode_once(raw: bytes, expected: str) -> None:
    assert canonical_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"http://evil/x", "absolute_form"),
        (b"*", "absolute_form"),
        (b"", "absolute_form"),
        (b"/a/../b", "dot_segment"),
        (b"/a/./b", "dot_segment"),
        (b"/a/%2e%2E/b", "dot_segment"),
        (b"/..", "dot_segment"),
        (b"/a%2fb", "path_encoding"),
        (b"/a%5Cb", "path_encoding"),
        (b"/a%00", "path_encoding"),
        (b"/a%252e", "path_encoding"),
        (b"/a%zz", "path_encoding"),
        (b"/a%4", "path_encoding"),
        (b"/a;b", "path_char"),
        (b"/a#b", "path_char"),
        (b"/a\\b", "path_char"),
        (b"/a b", "path_char"),
        (b"/a\x00", "path_char"),
        (b"/caf\xc3\xa9", "path_char"),
        (b"/caf%C3%A9", "path_char"),
        (b"/a%09b", "path_char"),
        (b"//a", "empty_segment"),
        (b"/a//b", "empty_segment"),
        (b"/a//", "empty_segment"),
        (b"/" + b"a" * 5000, "path_too_long"),
    ],
)
def test_ambiguous_paths_are_refused_with_their_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BadRequest) as caught:
        canonical_path(raw)
    assert caught.value.reason == reason
    assert caught.value.status == 400


def test_forwarded_path_decodes_back_to_the_decided_path() -> None:
    for raw in (b"/a/%41", b"/x/y:z@w", b"/q/it's", b"/p/a+b=c"):
        path = canonical_path(raw)
        assert canonical_path(encode_path(path)) == path
