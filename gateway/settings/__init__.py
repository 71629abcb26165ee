"""One validated settings object from a YAML file plus ``GATEWAY_*`` environment overrides.

Every problem is collected and reported together, each as
``SOURCE: option 'PATH' must be EXPECTED but it's configured as 'FOUND'`` (the policy loader's
wording), so an operator fixes a config in one round instead of one restart per typo.

Environment overrides: every scalar option has one variable, ``GATEWAY_`` + its dotted path in
upper case with ``.`` read as ``_`` (``upstream.url`` → ``GATEWAY_UPSTREAM_URL``). List options
take a comma-separated value. Secrets never come from the YAML file itself: keys name an
environment variable (``secret_env``) or a file (``secret_file``) that holds them.
"""

from __future__ import annotations

from gateway.settings.load import load_settings
from gateway.settings.model import (
    ASYMMETRIC_ALGS,
    HMAC_ALGS,
    MODES,
    DeliverySettings,
    Settings,
    UpstreamSettings,
)
from gateway.settings.schema import SCALARS, SECRETS, env_name

__all__ = [
    "ASYMMETRIC_ALGS",
    "HMAC_ALGS",
    "MODES",
    "SCALARS",
    "SECRETS",
    "DeliverySettings",
    "Settings",
    "UpstreamSettings",
    "env_name",
    "load_settings",
]
