"""The request body the gateway forwards: streamed through, or read whole where it must be.

Read whole (up to ``max_body_bytes``) when the rule rewrites the user-id field inside the body,
and when the client sent no length (chunked): a refused request must never reach the backend,
so a body of unknown size is checked against the limit before anything is forwarded. Otherwise
it streams, with its Content-Length.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gateway.errors import BadRequest, PayloadTooLarge, UpstreamUnavailable
from gateway.identity.model import Identity
from gateway.policy.model import Rule
from gateway.rewrite.body import overwrite_user_id, remove_user_id
from gateway.rewrite.headers import RequestHeaders


async def request_body(
    receive: Any,
    request: RequestHeaders,
    rule: Rule | None,
    identity: Identity | None,
    max_body_bytes: int,
) -> tuple[bytes | AsyncIterator[bytes], int | None]:
    """The body to send upstream and its length (None: the body is complete bytes)."""
    length: int | None = None
    raw_length = request.content_length
    if raw_length is not None:
        if request.content_lengths > 1 or not raw_length.isdigit() or len(raw_length) > 18:
            raise BadRequest("The Content-Length header is invalid.")
        length = int(raw_length)
    chunked = request.chunked
    content_type = request.content_type
    if length is not None and length > max_body_bytes:
        raise PayloadTooLarge()
    has_body = chunked or bool(length)
    pointers = rule.body_user_id if rule is not None else ()
    if pointers and (has_body or content_type is not None):
        body = await read_all(receive, max_body_bytes)
        if identity is not None:
            return overwrite_user_id(body, content_type, pointers, identity.user_id), None
        # No trusted id to write: remove the field so a client cannot choose it.
        return remove_user_id(body, content_type, pointers), None
    if not has_body:
        return b"", None
    if chunked or length is None:
        # Without a length the gateway cannot know the body fits before it has read it, and a
        # refused request must never reach the backend, so it is buffered up to the limit.
        return await read_all(receive, max_body_bytes), None
    first = await receive()
    if first["type"] != "http.request":
        raise BadRequest("The client went away.", reason="client_disconnect")
    if not first.get("more_body", False):
        return first.get("body", b""), None
    return _stream_body(first.get("body", b""), receive), length


async def read_all(receive: Any, max_body_bytes: int) -> bytes:
    """The whole body, refused with 413 as soon as it grows past ``max_body_bytes``."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BadRequest("The client went away.", reason="client_disconnect")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body_bytes:
            raise PayloadTooLarge()
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _stream_body(first: bytes, receive: Any) -> AsyncIterator[bytes]:
    if first:
        yield first
    while True:
        message = await receive()
        if message["type"] != "http.request":
            # The client went away mid-upload; the upstream connection is closed, not reused.
            raise UpstreamUnavailable("The client went away.", reason="client_disconnect")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
