"""Which upstream response headers reach the client: all but the upstream hop's own."""

from __future__ import annotations

from collections.abc import Sequence

# Response headers that describe the upstream hop, not the client's.
RESPONSE_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Connection values that name no end-to-end header.
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})


def response_headers(raw_headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Upstream response headers minus hop-by-hop ones; every ``Set-Cookie`` is kept.

    ``raw_headers`` names are lower-case (the upstream client's parser makes them so).
    """
    out = [header for header in raw_headers if header[0] not in RESPONSE_HOP_BY_HOP]
    if len(out) == len(raw_headers):
        return out
    # Something hop-by-hop was there; a Connection header may name more to drop. The usual
    # ``Connection: keep-alive`` names only what is already gone, so nothing is rebuilt then.
    listed: set[bytes] = set()
    for name, value in raw_headers:
        if name == b"connection" and value.lower() not in _PLAIN_CONNECTION:
            listed.update(token.strip().lower() for token in value.split(b","))
    listed -= RESPONSE_HOP_BY_HOP
    if listed:
        out = [header for header in out if header[0] not in listed]
    return out
