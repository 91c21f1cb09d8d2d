"""Prometheus metrics of one gateway process (own registry: several apps can live in one test process).

Cache hit/miss counts and the listener state are read at scrape time by a collector instead of being
incremented per call. With several uvicorn workers each process serves its own numbers on /metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class _StateCollector(Collector):
    def __init__(self) -> None:
        self.caches: dict[str, Any] = {}
        self.connected: asyncio.Event | None = None
        self.tokens: Mapping[str, int] = {}

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        lookups = CounterMetricFamily(
            "gateway_cache_lookups", "in-process cache lookups", labels=["cache", "result"]
        )
        size = GaugeMetricFamily("gateway_cache_entries", "entries held", labels=["cache"])
        for name, cache in self.caches.items():
            lookups.add_metric([name, "hit"], cache.hits)
            lookups.add_metric([name, "miss"], cache.misses)
            size.add_metric([name], len(cache))
        yield lookups
        yield size
        checks = CounterMetricFamily(
            "gateway_token_checks",
            "bearer-token checks past the admin token: malformed (refused unhashed), hit, negative_hit, "
            "lookup (one registry read), joined (shared a read in flight), shed (lookup budget spent)",
            labels=["result"],
        )
        for result, n in sorted(self.tokens.items()):
            checks.add_metric([result], n)
        yield checks
        up = GaugeMetricFamily("gateway_invalidation_connected", "1 while subscribed to invalidations")
        up.add_metric([], 1.0 if self.connected is not None and self.connected.is_set() else 0.0)
        yield up


@dataclass(frozen=True)
class GatewayMetrics:
    registry: CollectorRegistry
    requests: Counter
    duration: Histogram
    execlog_dropped: Counter
    execlog_written: Counter
    operator_calls: Counter
    debug_active: Gauge
    debug_sessions: Counter
    debug_events: Counter
    _state: _StateCollector = field(default_factory=_StateCollector)

    @classmethod
    def create(cls) -> GatewayMetrics:
        reg = CollectorRegistry()
        state = _StateCollector()
        reg.register(state)
        return cls(
            registry=reg,
            requests=Counter(
                "gateway_requests", "tenant calls by status and outcome", ["status", "outcome"], registry=reg
            ),
            duration=Histogram(
                "gateway_request_seconds",
                "tenant call latency at the gateway",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                registry=reg,
            ),
            execlog_dropped=Counter(
                "gateway_execlog_dropped",
                "execution_log rows dropped (queue full or write failed)",
                registry=reg,
            ),
            execlog_written=Counter("gateway_execlog_written", "execution_log rows written", registry=reg),
            operator_calls=Counter(
                "gateway_operator_calls", "calls made by global admin tokens for a tenant", registry=reg
            ),
            debug_active=Gauge("gateway_debug_sessions_active", "open SSE debug sessions", registry=reg),
            debug_sessions=Counter(
                "gateway_debug_sessions",
                "debug viewing sessions ended (sse) or polls answered (poll), by how they ended",
                ["transport", "reason"],
                registry=reg,
            ),
            debug_events=Counter(
                "gateway_debug_events_sent", "debug events sent to viewers", ["transport"], registry=reg
            ),
            _state=state,
        )

    def register_caches(
        self, installs: Any, connected: asyncio.Event, *, tokens: Mapping[str, int] | None = None
    ) -> None:
        self._state.caches = {"installs": installs}
        self._state.connected = connected
        self._state.tokens = tokens if tokens is not None else {}
