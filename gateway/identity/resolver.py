"""Find out who is calling, from the request's credentials.

Today that is a Bearer JWT; session cookies and anonymous visitors join here. The resolver
returns either an :class:`Identity` or the identity error it would raise, because whether an
invalid credential matters depends on the route: ``public`` routes ignore it (CONTRACT §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.errors import BadRequest, IdentityError, TokenInvalid
from gateway.identity.model import Identity


class TokenVerifier(Protocol):
    def verify_cached(self, token: str) -> Identity | None: ...

    async def verify(self, token: str) -> Identity: ...


@dataclass(frozen=True, slots=True)
class Credentials:
    """The credential-bearing parts of a request, read in one pass over its headers."""

    authorization: bytes | None = None


def read_credentials(headers: list[tuple[bytes, bytes]]) -> Credentials:
    authorization = None
    for name, value in headers:
        if name == b"authorization":
            if authorization is not None:
                # Two Authorization headers: frameworks disagree on which one wins.
                raise BadRequest("The request has more than one Authorization header.")
            authorization = value
    return Credentials(authorization=authorization)


class Resolver:
    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def resolve(self, credentials: Credentials) -> Identity | IdentityError | None:
        """The caller's identity, the error its credentials earn, or None without credentials."""
        if credentials.authorization is None:
            return None
        scheme, _, token_bytes = credentials.authorization.strip().partition(b" ")
        token_bytes = token_bytes.strip()
        if scheme.lower() != b"bearer" or not token_bytes:
            return TokenInvalid(
                "The Authorization header must be 'Bearer <token>'.", reason="bad_scheme"
            )
        try:
            token = token_bytes.decode("ascii")
        except UnicodeDecodeError:
            return TokenInvalid(reason="malformed")
        verifier = self._verifier
        try:
            identity = verifier.verify_cached(token)
            if identity is None:
                identity = await verifier.verify(token)
        except IdentityError as error:
            return error
        return identity
