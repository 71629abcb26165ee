"""The RESP wire format for :mod:`gateway.stores.resp`: URLs, commands out, replies in.

Pure functions and data, no I/O: :func:`parse_url` reads a Redis URL the way redis-py does,
:func:`encode` turns a command into bytes, and :func:`_parse` reads one reply out of received
bytes. They are kept apart from the connection and the client so the format can be read (and
checked against the RESP2 specification) on its own, and so the error classes both the client
and :class:`gateway.stores.redis.RedisStore` need have a home that imports nothing else of
the gateway.

URLs: ``redis://[[user]:password@]host[:port][/db]`` and ``unix://[[user]:password@]/path?db=N``.
``rediss://`` (TLS) and any other query option are refused with :class:`UnsupportedURL`, so
that such a store keeps using redis-py, which understands all of them.

Replies: RESP2, plus the RESP3 types a connection that said ``HELLO 3`` receives
(:mod:`gateway.stores.resp_tracked` does, for invalidation messages): null, map (read as a
flat list), set, boolean, double, big number, verbatim string, blob error, and the out-of-band
push (:class:`Push`), which answers no command and so must never be matched to a waiter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Endpoint", "Push", "Reply", "ReplyError", "UnsupportedURL", "encode", "parse_url"]

# A reply: bulk string (bytes), nil (None), integer, simple string (bytes), array.
Reply: TypeAlias = "bytes | int | list[Reply] | None"

_INCOMPLETE: Final = object()


class UnsupportedURL(ValueError):
    """The URL needs something this client does not do (TLS, options): use redis-py."""


class Push(list):  # type: ignore[type-arg]
    """A RESP3 push (``>``): an out-of-band message such as ``["invalidate", [key, …]]``."""


class ReplyError(Exception):
    """An error reply from Redis (``-ERR …``, ``-WRONGTYPE …``); the connection stays usable."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str | None  # None for a unix socket
    port: int
    path: str | None  # the unix socket's path
    db: int
    username: str | None
    password: str | None


def parse_url(url: str) -> Endpoint:
    """The endpoint of a ``redis://`` or ``unix://`` URL; UnsupportedURL for anything else.

    Read as redis-py reads it (``redis.asyncio.connection.parse_url``: a ``?db=`` wins over
    the path), so both clients of a RedisStore always talk to the same database as the same
    user; a URL redis-py would read more leniently (a db that is not a number) is refused.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if set(query) - {"db"}:
        # Never echo the URL: it may carry a password.
        raise UnsupportedURL("URL options other than db are not supported")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    try:
        if "db" in query:
            db = int(query["db"][0])
        elif parts.scheme == "redis" and parts.path.strip("/"):
            db = int(unquote(parts.path).replace("/", ""))
        else:
            db = 0
        if parts.scheme == "redis":
            host = unquote(parts.hostname) if parts.hostname else "localhost"
            return Endpoint(host, parts.port or 6379, None, db, username, password)
        if parts.scheme == "unix":
            if not parts.path:
                raise UnsupportedURL("a unix:// URL needs a socket path")
            return Endpoint(None, 0, unquote(parts.path), db, username, password)
    except ValueError as exc:  # a port or db that is not a number
        raise UnsupportedURL("the URL's port or database is not a number") from exc
    raise UnsupportedURL(f"scheme {parts.scheme!r} is not supported (redis:// or unix:// only)")


def encode(*args: bytes) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(out)


def _parse(buf: bytes, pos: int) -> tuple[object, int]:
    """One reply starting at ``pos``: (reply, end), or (_INCOMPLETE, bytes needed or 0).

    Raises ValueError on bytes that are not RESP.
    """
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE, 0
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        size = int(buf[pos + 1:end])
        if size < 0:
            return None, end + 2
        start = end + 2
        stop = start + size
        if len(buf) < stop + 2:
            return _INCOMPLETE, stop + 2
        return buf[start:stop], stop + 2
    if kind == 43:  # + simple string
        return buf[pos + 1:end], end + 2
    if kind == 58:  # : integer
        return int(buf[pos + 1:end]), end + 2
    if kind == 45:  # - error
        return ReplyError(buf[pos + 1:end].decode("utf-8", "replace")), end + 2
    if kind in _AGGREGATES:  # * array, > push, ~ set, % map (key, value, key, value …)
        count = int(buf[pos + 1:end])
        if count < 0:
            return None, end + 2
        if kind == 37:
            count *= 2
        items: list[object] = Push() if kind == 62 else []
        pos = end + 2
        for _ in range(count):
            item, pos = _parse(buf, pos)
            if item is _INCOMPLETE:
                return _INCOMPLETE, pos
            items.append(item)
        return items, pos
    if kind == 95:  # _ null (RESP3)
        return None, end + 2
    if kind == 35:  # # boolean (RESP3)
        return int(buf[pos + 1:end] == b"t"), end + 2
    if kind == 40:  # ( big number (RESP3)
        return int(buf[pos + 1:end]), end + 2
    if kind == 44:  # , double (RESP3): kept as its text, nothing here computes with it
        return buf[pos + 1:end], end + 2
    if kind in (61, 33):  # = verbatim string, ! blob error (RESP3): sized like $
        size = int(buf[pos + 1:end])
        start = end + 2
        stop = start + size
        if len(buf) < stop + 2:
            return _INCOMPLETE, stop + 2
        if kind == 33:
            return ReplyError(buf[start:stop].decode("utf-8", "replace")), stop + 2
        return buf[start + 4:stop], stop + 2  # without the "txt:" format prefix
    raise ValueError("not a RESP reply")


_AGGREGATES: Final = frozenset(b"*>~%")
