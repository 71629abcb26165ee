"""Prometheus metrics, one registry per app (tests build several apps in one process).

Two kinds of cost, two kinds of counter:

- **Per request** (the hot path): plain ints in a dict and a list, exported by a collector only
  when ``/metrics`` is scraped. prometheus-client's own ``Counter.labels().inc()`` costs
  ~1.3 µs and a ``Histogram.observe`` ~0.7 µs (measured here, each with a lock); the plain
  version of all three updates costs ~0.4 µs. The event loop is one thread, so nothing here
  needs a lock: a scrape runs on the same loop and sees a consistent snapshot.
- **Rare events** (JWT failures, OTP, reloads, WebSockets): ordinary prometheus-client
  counters, with label values from a fixed vocabulary so an attacker cannot grow the series.

Label values stay bounded: ``rule`` is a rule name from the policy set (or ``(default)`` when
none matched, ``-`` when the request was refused before any rule was looked at, ``/auth`` for
the gateway's own endpoints), ``decision`` is one of :data:`DECISIONS` and ``status`` an HTTP
status code (100-599).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

# Request log decisions → metric label; "shadow" means a shadow rule would have refused.
DECISIONS: Final[dict[str, str]] = {
    "allow": "allow",
    "refuse": "refuse",
    "shadow-allow": "shadow",
    "control": "control",
}
# Seconds. The gateway's own work is tens of microseconds, a backend answer milliseconds to
# seconds, so the buckets start low and reach into the timeouts.
BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
JWT_REASONS: Final = (
    "malformed", "bad_scheme", "crit_unsupported", "alg_mismatch", "unknown_issuer",
    "unknown_kid", "bad_signature", "missing_claim", "bad_audience", "bad_subject",
    "missing_scope", "lifetime_too_long", "immature", "expired", "other",
)
OTP_SEND_RESULTS: Final = ("sent", "not_sent", "rate_limited", "locked", "unknown_user", "error")
OTP_VERIFY_OUTCOMES: Final = ("ok", "invalid", "locked", "rate_limited", "malformed", "error")
OTP_LOCK_SCOPES: Final = ("challenge", "user")
# RFC 6455 codes a bridge uses plus the gateway's own 4401/4403 (CONTRACT §7).
WS_CLOSE_CODES: Final = (
    "1000", "1001", "1005", "1006", "1008", "1009", "1011", "1012", "4401", "4403", "other",
)


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last slot is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, running = [], 0
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            cumulative.append((bound, float(running)))
        return HistogramMetricFamily(name, documentation, buckets=cumulative,
                                     sum_value=self.total)


class RequestMetrics(Collector):
    """Per-request counters on plain ints; exported at scrape time."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.processing = _Histogram()
        self.upstream = _Histogram()

    def observe(
        self, rule: str, decision: str, status: int, processing: float, upstream: float | None
    ) -> None:
        key = (rule, decision, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        self.processing.observe(processing)
        if upstream is not None:
            self.upstream.observe(upstream)

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "gateway_requests", "Requests by policy rule, decision and response status.",
            labels=("rule", "decision", "status"))
        for (rule, decision, status), count in list(self.requests.items()):
            requests.add_metric((rule, DECISIONS.get(decision, decision), str(status)), count)
        yield requests
        yield self.processing.family(
            "gateway_processing_seconds",
            "The gateway's own work per request: arrival until the request goes upstream, or "
            "until the refusal is answered.")
        yield self.upstream.family(
            "gateway_upstream_seconds",
            "Backend latency: request sent until the response head arrived.")


class CacheStats(Protocol):
    """What a local cache tells about itself (``TrackedClient``, the WebSocket session copy)."""

    hits: int
    misses: int

    def cached(self) -> int: ...


class SessionCacheMetrics(Collector):
    """The WebSocket re-check's session copy (Redis store, ``store.websocket_cache``).

    Read from the cache's own counters at scrape time: nothing is added to the re-check.
    """

    def __init__(self, stats: CacheStats) -> None:
        self.stats = stats

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        stats = self.stats
        yield CounterMetricFamily(
            "gateway_websocket_session_cache_hits",
            "WebSocket re-checks answered from the session copy Redis vouches for.",
            value=stats.hits)
        yield CounterMetricFamily(
            "gateway_websocket_session_cache_misses",
            "WebSocket re-checks that read Redis: no copy, a copy invalidated, or a link to "
            "Redis not heard from within the store timeout.",
            value=stats.misses)
        yield GaugeMetricFamily(
            "gateway_websocket_session_cache_entries",
            "Session records held in the copy.", value=stats.cached())


class Metrics:
    """Every metric of one app, registered in its own :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = RequestMetrics()
        registry.register(self.requests)
        self._jwt = Counter("gateway_jwt_failures", "Rejected bearer JWTs by reason.",
                            ("reason",), registry=registry)
        self.otp_sends = Counter("gateway_otp_sends", "OTP send requests by result.",
                                 ("result",), registry=registry)
        self.otp_verifies = Counter("gateway_otp_verifies", "OTP verifications by outcome.",
                                    ("outcome",), registry=registry)
        self.otp_lockouts = Counter("gateway_otp_lockouts",
                                    "OTP lockouts: a code burned, or a user locked for the hour.",
                                    ("scope",), registry=registry)
        self.ws_opened = Counter("gateway_websocket_opened", "WebSocket connections accepted.",
                                 registry=registry)
        self._ws_closed = Counter("gateway_websocket_closed",
                                  "WebSocket connections closed, by close code.",
                                  ("code",), registry=registry)
        self.policy_reloads = Counter("gateway_policy_reloads", "Policy reloads by result.",
                                      ("result",), registry=registry)
        self.policy_rules = Gauge("gateway_policy_rules", "Rules in the active policy set.",
                                  registry=registry)
        self.policy_reload_ok = Gauge(
            "gateway_policy_last_reload_ok",
            "1 if the last policy reload succeeded (or none happened yet), 0 if the files on "
            "disk are invalid and an older set is still enforced.", registry=registry)
        self.policy_reload_ok.set(1)
        # Every series exists from the start at 0, so rate() and alerts work before the first
        # event, and a label value outside the vocabulary can never create a new one.
        for reason in JWT_REASONS:
            self._jwt.labels(reason)
        for counter, values in ((self.otp_sends, OTP_SEND_RESULTS),
                                (self.otp_verifies, OTP_VERIFY_OUTCOMES),
                                (self.otp_lockouts, OTP_LOCK_SCOPES),
                                (self._ws_closed, WS_CLOSE_CODES),
                                (self.policy_reloads, ("ok", "failed"))):
            for value in values:
                counter.labels(value)

    def watch_session_cache(self, stats: CacheStats) -> None:
        """Export the WebSocket session copy's counters (only where the store keeps one)."""
        self.registry.register(SessionCacheMetrics(stats))

    def jwt_failure(self, reason: str | None) -> None:
        self._jwt.labels(reason if reason in JWT_REASONS else "other").inc()

    def ws_closed(self, code: int) -> None:
        label = str(code)
        self._ws_closed.labels(label if label in WS_CLOSE_CODES else "other").inc()

    def watch_websocket(
        self, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> tuple[Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]]:
        """ASGI ``receive``/``send`` that count an accepted connection and how it closed.

        Watching the ASGI messages keeps the bridge free of metrics code: ``websocket.accept``
        opens, and the first of the gateway's ``websocket.close`` or the client's
        ``websocket.disconnect`` closes, with its code. A handshake refused before the accept
        is not a connection and counts in neither.
        """
        state = {"open": False}

        async def watched_send(message: Any) -> None:
            kind = message["type"]
            if kind == "websocket.accept":
                state["open"] = True
                self.ws_opened.inc()
            elif kind == "websocket.close" and state["open"]:
                state["open"] = False
                self.ws_closed(int(message.get("code", 1000)))
            await send(message)

        async def watched_receive() -> Any:
            message = await receive()
            if message["type"] == "websocket.disconnect" and state["open"]:
                state["open"] = False
                self.ws_closed(int(message.get("code", 1005)))
            return message

        return watched_receive, watched_send

    def render(self) -> bytes:
        """The Prometheus text exposition of this app's registry."""
        return generate_latest(self.registry)
