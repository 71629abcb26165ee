"""Prototype hot-path fixes, applied as patches at start-up, to measure them before anyone edits
gateway/. Not used by a plain ``make bench``; ``BENCH_VARIANTS=gc50k make bench`` runs each
variant as an extra case next to the unpatched gateway, in the same run.

    python bench/prototypes.py gc50k -- --config gw.yaml run

These are measurement tools, deliberately minimal: a fix that proves itself belongs in gateway/
with tests. The first three measured here (one write per response, the request-log encoder,
``gc.freeze``) have landed that way (gateway/server_protocol.py, gateway/observe.py,
gateway/server.py) and are gone from this file.

* ``gc50k``: ``gc.set_threshold(50_000, 20, 20)`` after start-up (young collections every 50k
  allocations instead of 700), on top of the ``gc.freeze()`` the gateway does itself.
"""

from __future__ import annotations

import gc
import sys
from typing import Any


def _after_startup(action: Any) -> None:
    from gateway.app import GatewayApp

    original = GatewayApp.startup

    async def startup(self: Any) -> None:
        await original(self)
        action()

    GatewayApp.startup = startup  # type: ignore[method-assign]


def gc_50k() -> None:
    def tune() -> None:
        gc.set_threshold(50_000, 20, 20)

    _after_startup(tune)


PATCHES = {"gc50k": gc_50k}


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
