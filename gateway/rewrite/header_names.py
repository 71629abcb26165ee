"""The header names the gateway strips, sets itself, or injects (CONTRACT §6).

Kept apart from :mod:`gateway.rewrite.headers`, which applies them to each request, so that the
lists a security review reads (what a client can never pass to the backend) are in one short
file, and so that the settings can name :class:`HeaderNames` without importing the rewriter.
"""

from __future__ import annotations

from dataclasses import dataclass

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
