"""Prometheus metrics of one runner app (a registry per app, so tests can build several).

What a scrape can read from the runner's own state (admitted and queued executions, the component
cache's size and hit counts) is read at scrape time (`watch`), not written on every call: a C echo
call costs ~300 µs of runner CPU, and keeping five gauges and counters current cost several of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class _CacheCounts(Collector):
    """The component cache's hit and miss counts, as counters, read when scraped."""

    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        hits, misses = self._counts()
        yield CounterMetricFamily("extplane_runner_component_cache_hits", "Component cache hits", value=hits)
        yield CounterMetricFamily(
            "extplane_runner_component_cache_misses", "Component cache misses", value=misses
        )


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    executions: Counter
    duration: Histogram
    fuel: Counter
    cache_bytes: Gauge
    loads: Histogram
    queue_depth: Gauge
    in_flight: Gauge
    busy: Counter
    shed: Counter
    abandoned: Counter
    denied: Counter
    inline: Counter

    @classmethod
    def create(cls) -> Metrics:
        r = CollectorRegistry()
        return cls(
            registry=r,
            executions=Counter(
                "extplane_runner_executions",
                "Executions by outcome (ok or an error code)",
                ["outcome"],
                registry=r,
            ),
            duration=Histogram(
                "extplane_runner_execution_seconds",
                "Wall time of one execution (store, instantiate, call)",
                buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                registry=r,
            ),
            fuel=Counter("extplane_runner_fuel_consumed", "Fuel consumed by guests", registry=r),
            cache_bytes=Gauge(
                "extplane_runner_component_cache_bytes", "Bytes of loaded components", registry=r
            ),
            loads=Histogram(
                "extplane_runner_component_load_bytes",
                "Size of components loaded, by source",
                ["source"],
                buckets=(1e4, 1e5, 1e6, 1e7, 5e7, 1e8),
                registry=r,
            ),
            queue_depth=Gauge("extplane_runner_queue_depth", "Executions waiting for a thread", registry=r),
            in_flight=Gauge(
                "extplane_runner_in_flight", "Executions admitted (running or queued)", registry=r
            ),
            busy=Counter("extplane_runner_busy_rejections", "Requests refused with runner_busy", registry=r),
            shed=Counter(
                "extplane_runner_shed",
                "runner_busy answers by reason (full, tenant_share, queued_past_deadline)",
                ["reason"],
                registry=r,
            ),
            abandoned=Counter(
                "extplane_runner_abandoned",
                "Executions whose caller left before the answer, by stage (queued, running)",
                ["stage"],
                registry=r,
            ),
            denied=Counter(
                "extplane_runner_capability_denied",
                "Host calls refused for lack of a grant",
                ["capability"],
                registry=r,
            ),
            inline=Counter(
                "extplane_runner_inline_calls",
                "Co-located executions run on the event loop's thread (runner._inline)",
                registry=r,
            ),
        )

    def watch(
        self,
        *,
        admitted: Callable[[], float],
        waiting: Callable[[], float],
        cache_bytes: Callable[[], float],
        cache_counts: Callable[[], tuple[int, int]],
    ) -> None:
        """Read these at scrape time: executions admitted and waiting, the cache's bytes, hits and misses."""
        self.in_flight.set_function(admitted)
        self.queue_depth.set_function(waiting)
        self.cache_bytes.set_function(cache_bytes)
        self.registry.register(_CacheCounts(cache_counts))
