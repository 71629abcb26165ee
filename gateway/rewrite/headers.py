"""What the backend receives as headers (CONTRACT §6).

The backend trusts ``X-User-Id`` and friends because only the gateway can set them. That holds
only if every header a client could use to pose as someone else is removed first, in every
spelling a backend framework might read: any case, ``_`` for ``-`` (WSGI and CGI servers map
both to the same ``HTTP_X_USER_ID``), repeated, or named in ``Connection`` so that a naive proxy
would drop the gateway's own header instead of the client's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from gateway.identity.model import Identity

# Stripped whatever their value: identity as some backend or auth proxy understands it.
SPOOFABLE_NAMES = frozenset(
    {
        "remote-user",
        "x-remote-user",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-preferred-username",
        "x-forwarded-groups",
        "x-forwarded-access-token",
        "x-authenticated-user",
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-uri",
        "x-original-uri",
    }
)
SPOOFABLE_PREFIXES = ("x-user-", "x-auth-", "x-gateway-", "x-anonymous-")

# RFC 9110 §7.6.1 hop-by-hop headers, plus the framing headers the upstream client sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        # The gateway reads the body itself (and answers 100-continue itself), so the upstream
        # must not wait for a second interim response.
        "expect",
    }
)
# Set from the connection; taken from the request only when the peer is a trusted proxy.
FORWARDING = frozenset(
    {
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded",
        # Client-address headers other proxies and CDNs set; a backend may log or trust them,
        # so a client's own copy never passes (the gateway sends X-Forwarded-For instead).
        "x-real-ip", "true-client-ip", "x-client-ip", "cf-connecting-ip", "fastly-client-ip",
    }
)
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

_KEEP, _DROP, _FORWARDING, _AUTHORIZATION, _COOKIE = range(5)


def normalise(name: str) -> str:
    """The name as a backend framework may read it: lower-case, ``_`` read as ``-``."""
    return name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True)
class HeaderNames:
    """The identity header names the gateway injects (each configurable)."""

    user_id: str = "X-User-Id"
    level: str = "X-Auth-Level"
    email: str = "X-User-Email"
    name: str = "X-User-Name"
    anonymous_id: str = "X-Anonymous-Id"

    def all(self) -> tuple[str, ...]:
        return (self.user_id, self.level, self.email, self.name, self.anonymous_id)


class HeaderRewriter:
    """Strips spoofable and hop-by-hop headers, then injects the trusted identity."""

    def __init__(
        self,
        *,
        upstream_host: str,
        names: HeaderNames | None = None,
        cookie_names: Iterable[str] = (),
        forward_authorization: bool = False,
        forward_gateway_cookie: bool = False,
        trusted_proxies: Sequence[str] = (),
        also_strip: Iterable[str] = (),
    ) -> None:
        self.names = names or HeaderNames()
        self._host = upstream_host.encode("latin-1")
        self._cookie_names = frozenset(cookie_names)
        self._forward_authorization = forward_authorization
        self._forward_cookie = forward_gateway_cookie
        self._trusted = tuple(ipaddress.ip_network(net, strict=False) for net in trusted_proxies)
        # ``also_strip``: other headers the gateway sets itself (X-Gateway-Assertion under a
        # configured name), which a client must never be able to send in its place.
        self._spoofable = SPOOFABLE_NAMES | {normalise(n) for n in (*self.names.all(),
                                                                  *also_strip)}
        self._encoded_names = tuple(n.lower().encode("latin-1") for n in self.names.all())
        # Classification per raw header name; names repeat across requests, so this turns the
        # string work into one dict lookup. Bounded because clients choose the names.
        self._seen: dict[bytes, int] = {}

    def _classify(self, raw: bytes) -> int:
        kind = self._seen.get(raw)
        if kind is not None:
            return kind
        name = normalise(raw.decode("latin-1"))
        if name in self._spoofable or name.startswith(SPOOFABLE_PREFIXES):
            kind = _DROP
        elif name in HOP_BY_HOP:
            kind = _DROP
        elif name in FORWARDING:
            kind = _FORWARDING
        elif name == "authorization":
            kind = _KEEP if self._forward_authorization else _AUTHORIZATION
        elif name == "cookie" and not self._forward_cookie and self._cookie_names:
            kind = _COOKIE
        else:
            kind = _KEEP
        if len(self._seen) < 4096:
            self._seen[raw] = kind
        return kind

    def is_trusted_proxy(self, peer: str | None) -> bool:
        if not self._trusted or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self._trusted)

    def client_ip(self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The client's address: the peer, or behind trusted proxies the last untrusted hop.

        Rate limits key on this, so behind a load balancer each user keeps their own budget
        instead of sharing the balancer's.
        """
        if not peer:
            return "unknown"
        if not self.is_trusted_proxy(peer):
            return peer
        hops: list[str] = []
        for name, value in headers:
            if name == b"x-forwarded-for":
                hops.extend(h.strip() for h in value.decode("latin-1").split(",") if h.strip())
        for hop in reversed(hops):
            if not self.is_trusted_proxy(hop):
                return hop
        return hops[0] if hops else peer

    def request_headers(
        self,
        raw_headers: Iterable[tuple[bytes, bytes]],
        identity: Identity | None,
        *,
        client_ip: str | None,
        scheme: str,
    ) -> list[tuple[bytes, bytes]]:
        """The header list for the upstream request (``Host`` first)."""
        out: list[tuple[bytes, bytes]] = [(b"host", self._host)]
        connection_listed: set[str] = set()
        incoming_host = b""
        forwarded: dict[str, list[bytes]] = {}
        classify = self._classify
        kept: list[tuple[bytes, bytes]] = []
        for name, value in raw_headers:
            kind = classify(name)
            if kind == _KEEP:
                kept.append((name, value))
            elif kind == _DROP:
                if name == b"connection":
                    for token in value.decode("latin-1").split(","):
                        connection_listed.add(normalise(token.strip()))
                elif name == b"host":
                    incoming_host = value
            elif kind == _FORWARDING:
                forwarded.setdefault(normalise(name.decode("latin-1")), []).append(value)
            elif kind == _COOKIE:
                cookie = self._strip_cookie(value)
                if cookie:
                    kept.append((name, cookie))
            # _AUTHORIZATION: the token was for the gateway, not the backend.
        if connection_listed:
            # A client may ask to drop end-to-end headers via Connection; honour that for what it
            # sent, but the gateway's own headers are added after this and cannot be named away.
            kept = [
                (n, v) for n, v in kept if normalise(n.decode("latin-1")) not in connection_listed
            ]
        out.extend(kept)
        trusted = self.is_trusted_proxy(client_ip)
        self._forwarding(out, forwarded if trusted else {}, client_ip, scheme, incoming_host)
        if identity is not None:
            out.extend(self.identity_headers(identity))
        return out

    def identity_headers(self, identity: Identity) -> list[tuple[bytes, bytes]]:
        user_id, level, email, name, anonymous_id = self._encoded_names
        headers = [
            (user_id, identity.user_id.encode("ascii")),
            (level, identity.level.encode("ascii")),
        ]
        if identity.email is not None:
            headers.append((email, _header_text(identity.email)))
        if identity.name is not None:
            headers.append((name, _header_text(identity.name)))
        if identity.anonymous_id is not None:
            headers.append((anonymous_id, identity.anonymous_id.encode("ascii")))
        return headers

    @staticmethod
    def _forwarding(
        out: list[tuple[bytes, bytes]],
        incoming: dict[str, list[bytes]],
        client_ip: str | None,
        scheme: str,
        host: bytes,
    ) -> None:
        # It is a security issue to trust forwarding headers that came from the client (werkzeug's
        # ProxyFix says the same): they are read only when the peer is a configured proxy.
        chain = [v.strip() for v in incoming.get("x-forwarded-for", []) if v.strip()]
        if client_ip:
            chain.append(client_ip.encode("latin-1"))
        if chain:
            out.append((b"x-forwarded-for", b", ".join(chain)))
        proto = incoming.get("x-forwarded-proto")
        out.append((b"x-forwarded-proto", proto[-1] if proto else scheme.encode("latin-1")))
        fwd_host = incoming.get("x-forwarded-host")
        if fwd_host:
            out.append((b"x-forwarded-host", fwd_host[-1]))
        elif host:
            out.append((b"x-forwarded-host", host))

    def _strip_cookie(self, value: bytes) -> bytes:
        parts = [p for p in value.split(b";") if p.strip()]
        kept = [
            p.strip()
            for p in parts
            if p.split(b"=", 1)[0].strip().decode("latin-1") not in self._cookie_names
        ]
        return b"; ".join(kept)


def _header_text(value: str) -> bytes:
    """Visible ASCII and spaces pass as they are; anything else is percent-encoded UTF-8.

    A raw newline would split the header and non-ASCII bytes are read differently by different
    servers, so a display name like ``Jörg`` arrives as ``J%C3%B6rg``.
    """
    if value.isascii() and value.isprintable():
        return value.encode("ascii")
    return quote(value, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode("ascii")


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
