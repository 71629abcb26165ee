"""The JWKS fetcher that keeps an issuer's keys fresh (keys themselves: :mod:`.jwk_keys`)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

import httpx
from cachetools import TTLCache

from gateway.identity.jwk_keys import EMPTY_KEY_SET, KeySet, PreparedKey, parse_jwks
from gateway.identity.jwt_config import JwksConfig
from gateway.tasks import cancel_and_wait

logger = logging.getLogger("gateway.jwt")

_MAX_JWKS_BYTES: Final = 1 << 20

class _JwksError(Exception):
    """A JWKS fetch failed for a reason we describe ourselves (safe to log)."""


def safe_url(url: str) -> str:
    """``url`` without credentials, query or fragment, which may hold secrets, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class JwksFetcher:
    """One issuer's JWKS: last good key set, TTL freshness, rate-limited shared refetches."""

    def __init__(
        self,
        config: JwksConfig,
        client: httpx.AsyncClient,
        *,
        timeout: float,
        min_refetch_interval: float,
        cache_ttl: float,
        clock: Callable[[], float],
    ) -> None:
        self._url = config.url
        self._log_url = safe_url(config.url)
        self._algorithms = config.algorithms
        self._client = client
        self._timeout = timeout
        self._min_interval = min_refetch_interval
        self._clock = clock
        # Holds the set while it is fresh; the entry expiring is what triggers a refresh.
        self._fresh: TTLCache[str, KeySet] = TTLCache(maxsize=1, ttl=cache_ttl, timer=clock)
        # Survives expiry and failed fetches: an IdP outage must not log every user out.
        self._last_good: KeySet | None = None
        self._attempted_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None

    @property
    def keys(self) -> KeySet:
        return self._last_good or EMPTY_KEY_SET

    async def find(self, kid: str | None) -> PreparedKey | None:
        if self._url not in self._fresh:
            if self._last_good is None:
                await self.refresh()
            else:
                # Known keys keep working while a stale set is refreshed off the request path.
                self._start_fetch()
        key = self.keys.find(kid)
        if key is None:
            await self.refresh()
            key = self.keys.find(kid)
        return key

    async def refresh(self) -> None:
        """Fetch now unless a fetch ran within the minimum interval; join one in flight."""
        task = self._start_fetch()
        if task is not None:
            # Shielded: a request that gives up must not cancel a fetch others are waiting on.
            await asyncio.shield(task)

    async def wait_idle(self) -> None:
        """Wait for a fetch in flight, if any (used by tests and shutdown)."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)

    async def aclose(self) -> None:
        task, self._inflight = self._inflight, None
        await cancel_and_wait(task)

    def _start_fetch(self) -> asyncio.Task[None] | None:
        if self._inflight is not None:
            return self._inflight
        now = self._clock()
        # Bounds fetches per issuer, so a flood of random kids cannot become a flood of
        # requests to the IdP.
        if self._attempted_at is not None and now - self._attempted_at < self._min_interval:
            return None
        self._attempted_at = now
        task = asyncio.get_running_loop().create_task(self._fetch())
        self._inflight = task
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._download()
            try:
                document = json.loads(body)
            except (ValueError, RecursionError):
                raise _JwksError("the document is not JSON") from None
            try:
                keys = parse_jwks(document, self._algorithms)
            except ValueError:
                raise _JwksError("the document is not a JWK set") from None
            if not keys.keys:
                raise _JwksError("the JWK set has no usable signing keys")
        # Any failure at all (network, status, size, content) keeps the last good set. Only
        # our own messages or an exception's type are logged: never the body, never the query.
        except Exception as error:
            detail = str(error) if isinstance(error, _JwksError) else type(error).__name__
            logger.warning(
                "JWKS fetch from %s failed (%s); keeping the last good key set",
                self._log_url,
                detail,
            )
            return
        self._last_good = keys
        self._fresh[self._url] = keys
        logger.info("JWKS from %s loaded: %d usable keys", self._log_url, len(keys.keys))

    async def _download(self) -> bytes:
        headers = {"accept": "application/json"}
        # Redirects are not followed whatever the shared client's default: the operator
        # configured this URL, and a redirect could downgrade it to plain http or another host.
        async with self._client.stream(
            "GET", self._url, headers=headers, timeout=self._timeout, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise _JwksError(f"HTTP status {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > _MAX_JWKS_BYTES:
                    raise _JwksError("the document is larger than 1 MiB")
                chunks.append(chunk)
            return b"".join(chunks)
