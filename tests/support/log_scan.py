"""The end-of-session log scan: no gateway process may ever log a token, code, cookie or secret.

CONTRACT §5: "No response or log line ever contains a token, a code, a cookie value or a
secret." Every gateway process the suite starts is registered (``procs.STARTED``); at the end
(``pytest_sessionfinish`` in tests/conftest.py) every line of their stdout and stderr is
checked for:

- JWT shapes (``eyJ…`` — the base64url of ``{"``) and PEM blocks (keys);
- every one-time code any test receiver got (``delivery.INBOXES``);
- ``gw_session=`` followed by a value, and every cookie value a test received in
  ``Set-Cookie`` (recorded by wrapping httpx's ``send``);
- every secret the tests passed to a gateway through a ``*_env`` option.

Findings name the file, the line number and the kind, never the value itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{6,}")
PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]*-----")
SESSION_COOKIE = re.compile(r"gw_session=[^;\s\"',]")
SIX_DIGITS = re.compile(r"(?<![0-9A-Za-z])\d{6}(?![0-9A-Za-z])")
# uvicorn's "Started server process [123456]": a pid is not a code, whatever its digits.
PROCESS_ID = re.compile(r"process \[\d+\]")

COOKIES_SEEN: set[str] = set()


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def scan_lines(
    lines: Iterable[str], *, codes: set[str], cookies: set[str], secrets: set[str]
) -> Iterator[tuple[int, str]]:
    """(line number, kind) for every line that leaks something."""
    for number, line in enumerate(lines, start=1):
        if JWT_SHAPE.search(line):
            yield number, "a JWT"
        if PEM_BLOCK.search(line):
            yield number, "a PEM key"
        if SESSION_COOKIE.search(line):
            yield number, "a session cookie value"
        if any(value in line for value in cookies):
            yield number, "a cookie value a test received"
        if any(value in line for value in secrets):
            yield number, "a configured secret"
        if codes and any(m.group() in codes for m in SIX_DIGITS.finditer(
                PROCESS_ID.sub("", line))):
            yield number, "a one-time code"


def scan_files(
    paths: Iterable[Path], *, codes: set[str], cookies: set[str], secrets: set[str]
) -> tuple[int, list[Finding]]:
    """(lines read, findings) over ``paths``; files that never got written are skipped."""
    total, findings = 0, []
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            continue
        total += len(lines)
        findings += [Finding(path, n, kind) for n, kind in
                     scan_lines(lines, codes=codes, cookies=cookies, secrets=secrets)]
    return total, findings


def _remember(response: httpx.Response) -> None:
    for header in response.headers.get_list("set-cookie"):
        value = header.split(";", 1)[0].partition("=")[2].strip()
        # Short values (the empty value of a logout, "1") are not credentials and would match
        # everywhere.
        if len(value) >= 16:
            COOKIES_SEEN.add(value)


@contextmanager
def recording_cookies() -> Iterator[None]:
    """Remember every Set-Cookie value any httpx client in the tests receives."""
    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = sync_send(self, request, **kwargs)
        _remember(response)
        return response

    async def asend(
        self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        response = await async_send(self, request, **kwargs)
        _remember(response)
        return response

    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]
    try:
        yield
    finally:
        httpx.Client.send = sync_send  # type: ignore[method-assign]
        httpx.AsyncClient.send = async_send  # type: ignore[method-assign]
