"""Prototype hot-path fixes, applied as patches at start-up, to measure them before anyone edits
gateway/. Not used by a plain ``make bench``;
``BENCH_VARIANTS=coalesce,fastlog,gcfreeze make bench`` runs each variant as an extra case next
to the unpatched gateway, in the same run.

    python bench/prototypes.py coalesce+fastlog -- --config gw.yaml run

These are measurement tools, deliberately minimal: the real fixes belong in gateway/ with
tests (bench/analysis.md says where and how).

* ``coalesce``: write a response's head and its fixed-length body with one ``write()`` instead
  of two (uvicorn writes the head as soon as ``http.response.start`` is sent).
* ``fastlog``: encode request-log lines with a JSON encoder built once, instead of
  ``json.dumps(..., separators=...)``, which builds a JSONEncoder and a C encoder per call.
  Same output, byte for byte.
* ``gcfreeze``: after start-up, ``gc.collect(); gc.freeze()``, so that the collector never
  rescans the import-time heap (modules, classes, settings) in its older generations.
* ``gc50k``: the same, plus ``gc.set_threshold(50_000, 20, 20)`` (young collections every 50k
  allocations instead of 700).
"""

from __future__ import annotations

import gc
import inspect
import sys
import time
from typing import Any


def coalesce() -> None:
    from uvicorn.protocols.http import httptools_impl

    cycle_class = httptools_impl.RequestResponseCycle
    original = cycle_class.send
    # The patch relies on uvicorn writing the head in send(http.response.start) through
    # self.transport.write and deciding framing there (0.54's RequestResponseCycle).
    if "self.transport.write(b\"\".join(content))" not in inspect.getsource(original):
        raise SystemExit("prototype coalesce does not fit this uvicorn version")

    class Collect:
        __slots__ = ("parts",)

        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.parts.append(data)

    class Prefixed:
        """The real transport, with the held head prepended to the next write."""

        __slots__ = ("head", "transport")

        def __init__(self, transport: Any, head: bytes) -> None:
            self.transport = transport
            self.head = head

        def write(self, data: bytes) -> None:
            head, self.head = self.head, b""
            self.transport.write(head + data)

        def close(self) -> None:
            if self.head:
                self.transport.write(self.head)
                self.head = b""
            self.transport.close()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.transport, name)

    async def send(self: Any, message: Any) -> None:
        if (message["type"] == "http.response.start" and not self.response_started
                and self.scope["method"] != "HEAD"):
            real, collect = self.transport, Collect()
            self.transport = collect
            try:
                await original(self, message)
            finally:
                self.transport = real
            head = b"".join(collect.parts)
            if self.chunked_encoding is False and self.expected_content_length > 0:
                self._held_head = head  # written with the first body piece
            else:
                real.write(head)
            return
        head = self.__dict__.pop("_held_head", None)
        if head is None:
            await original(self, message)
            return
        real = self.transport
        prefixed = Prefixed(real, head)
        self.transport = prefixed
        try:
            await original(self, message)
        finally:
            self.transport = real
            if prefixed.head and not real.is_closing():
                real.write(prefixed.head)

    cycle_class.send = send  # type: ignore[method-assign]


def fastlog() -> None:
    import json.encoder

    from gateway import observe

    source = inspect.getsource(observe.RequestLog.emit)
    if 'json.dumps(record, separators=(",", ":"))' not in source:
        raise SystemExit("prototype fastlog is out of date: RequestLog.emit changed")
    make = json.encoder.c_make_encoder
    if make is None:
        return
    # The arguments json.dumps(separators=(",", ":")) passes to the C encoder, built once.
    encode = make(None, None, json.encoder.encode_basestring_ascii, None, ":", ",", False,
                  False, True)
    user_hash = observe.user_hash

    def emit(self: Any, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        user = record.get("user")
        if user is not None:
            record["user"] = user_hash(user)
        record["time"] = round(time.time(), 3)
        record["type"] = "request"
        self._lines.append("".join(encode(record, 0)))
        if len(self._lines) >= observe.MAX_BUFFERED:
            self.flush()

    observe.RequestLog.emit = emit  # type: ignore[method-assign]


def _after_startup(action: Any) -> None:
    from gateway.app import GatewayApp

    original = GatewayApp.startup

    async def startup(self: Any) -> None:
        await original(self)
        action()

    GatewayApp.startup = startup  # type: ignore[method-assign]


def gc_freeze() -> None:
    def freeze() -> None:
        gc.collect()
        gc.freeze()

    _after_startup(freeze)


def gc_50k() -> None:
    def tune() -> None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)

    _after_startup(tune)


PATCHES = {"coalesce": coalesce, "fastlog": fastlog, "gcfreeze": gc_freeze, "gc50k": gc_50k}


def main() -> int:
    variant, separator, *args = sys.argv[1:]
    if separator != "--":
        print(__doc__, file=sys.stderr)
        return 2
    for name in variant.split("+"):
        PATCHES[name]()
    from gateway.cli import main as gateway_main

    return gateway_main(args)


if __name__ == "__main__":
    sys.exit(main())
