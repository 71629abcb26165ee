"""Several worker processes on one port: uvicorn's multi-worker mode with an app factory.

A worker cannot be handed an app object: uvicorn starts each one as a fresh process (spawn),
and the process imports :func:`create_from_env`, which builds its app from the same
configuration file (``GATEWAY_CONFIG``, which ``gateway run`` sets) and the same ``GATEWAY_*``
environment as its siblings. Workers share nothing in memory, which is why the settings refuse
``workers`` > 1 with the memory store: only Redis is seen by all of them.

Usable on its own, too: ``GATEWAY_CONFIG=gw.yaml uvicorn --factory gateway.asgi:create_from_env``
(with the flags from :func:`gateway.server.uvicorn_config`).
"""

from __future__ import annotations

import logging

from uvicorn.supervisors import Multiprocess

from gateway.app import GatewayApp, create_app
from gateway.observe import configure_logging
from gateway.server import freeze_heap, uvicorn_config
from gateway.settings import load_settings

FACTORY = "gateway.asgi:create_from_env"


def create_from_env() -> GatewayApp:
    """The app of one worker, from ``GATEWAY_CONFIG`` and the environment."""
    # uvicorn sets its error logger's level from --log-level in every worker before it calls
    # the factory; the gateway's own JSON logging follows the same level.
    level = logging.getLogger("uvicorn.error").getEffectiveLevel()
    configure_logging(logging.getLevelName(level))
    app = create_app(load_settings())
    freeze_heap()
    return app


def serve_workers(app: GatewayApp, *, host: str, port: int, workers: int, log_level: str) -> None:
    """Bind once, then run ``workers`` processes on the socket until a signal stops them.

    ``app`` was built in this (parent) process only to prove the configuration valid before
    any worker starts: an error is reported once instead of by every worker. It never serves.
    """
    config = uvicorn_config(app, host=host, port=port, workers=workers, log_level=log_level)
    config.app = FACTORY
    config.factory = True
    sock = config.bind_socket()
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
