"""The configured issuers and their verification keys: static keys plus each JWKS fetcher.

The key ring answers the two questions asked before a signature is checked — which configured
issuer does this token name, and which of that issuer's keys does its ``kid`` pick — only ever
by lookup in our own configuration. It is built (and the JWT settings validated) once at
start-up and owns the JWKS fetchers and any HTTP client made for them, so it is apart from the
per-token verifier. Key material itself is parsed in :mod:`gateway.identity.jwk_keys`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.errors import ConfigError
from gateway.identity.jwk_keys import KeySet, PreparedKey, prepare_config_key
from gateway.identity.jwks import JwksFetcher
from gateway.identity.jwt_config import IssuerConfig, JWTSettings, check_jwt_settings
from gateway.identity.jwt_unverified import reject


@dataclass(frozen=True, slots=True)
class ConfiguredIssuer:
    config: IssuerConfig
    static: KeySet
    jwks: JwksFetcher | None


class IssuerKeyRing:
    """Every configured issuer by name, with its static keys and JWKS fetcher."""

    def __init__(
        self,
        settings: JWTSettings,
        *,
        http_client: httpx.AsyncClient | None,
        clock: Callable[[], float],
    ) -> None:
        errors = check_jwt_settings(settings)
        prepared: list[KeySet] = []
        for index, config in enumerate(settings.issuers):
            keys: list[PreparedKey] = []
            for key in config.keys:
                try:
                    keys.append(prepare_config_key(key))
                except ValueError as error:
                    where = f"jwt.issuers[{index}] ({config.issuer!r}): key {key.kid!r}"
                    errors.append(f"{where}: {error}")
            prepared.append(KeySet.of(keys))
        if errors:
            raise ConfigError(errors)

        self._own_client: httpx.AsyncClient | None = None
        if http_client is None and any(config.jwks for config in settings.issuers):
            http_client = self._own_client = httpx.AsyncClient(timeout=settings.jwks_timeout)
        self._issuers: dict[str, ConfiguredIssuer] = {}
        for config, static in zip(settings.issuers, prepared, strict=True):
            fetcher = None
            if config.jwks is not None and http_client is not None:
                fetcher = JwksFetcher(
                    config.jwks,
                    http_client,
                    timeout=settings.jwks_timeout,
                    min_refetch_interval=settings.jwks_min_refetch_interval,
                    cache_ttl=settings.jwks_cache_ttl,
                    clock=clock,
                )
            self._issuers[config.issuer] = ConfiguredIssuer(config, static, fetcher)

    async def start(self) -> None:
        """Fetch every JWKS once; a failing IdP is logged and retried on demand, not fatal."""
        fetchers = [issuer.jwks for issuer in self._issuers.values() if issuer.jwks]
        await asyncio.gather(*(fetcher.refresh() for fetcher in fetchers))

    async def aclose(self) -> None:
        for issuer in self._issuers.values():
            if issuer.jwks is not None:
                await issuer.jwks.aclose()
        if self._own_client is not None:
            await self._own_client.aclose()

    def jwks_fetcher(self, issuer: str) -> JwksFetcher | None:
        """The JWKS fetcher of ``issuer`` (for readiness checks and tests)."""
        entry = self._issuers.get(issuer)
        return entry.jwks if entry else None

    def select_issuer(self, payload: dict[str, Any]) -> ConfiguredIssuer:
        iss = payload.get("iss")
        if iss is None:
            reject("missing_claim")
        # An exact dict lookup: no prefix, suffix, case or trailing-slash tolerance.
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            reject("unknown_issuer")
        return issuer

    async def find_key(self, issuer: ConfiguredIssuer, kid: str | None) -> PreparedKey:
        # The kid is only ever a dict key: it is never a path, a query or a URL.
        key: PreparedKey | None = None
        if kid is not None:
            key = issuer.static.find(kid)
            if key is None and issuer.jwks is not None:
                key = await issuer.jwks.find(kid)
        elif issuer.jwks is None:
            key = issuer.static.find(None)
        elif not issuer.static.keys:
            key = await issuer.jwks.find(None)
        if key is None:
            reject("unknown_kid")
        return key
