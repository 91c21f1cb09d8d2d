"""Prometheus metrics of one runner app (a registry per app, so tests can build several)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    executions: Counter
    duration: Histogram
    fuel: Counter
    cache_hits: Counter
    cache_misses: Counter
    cache_bytes: Gauge
    loads: Histogram
    queue_depth: Gauge
    in_flight: Gauge
    busy: Counter
    shed: Counter
    abandoned: Counter
    denied: Counter

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
            cache_hits=Counter("extplane_runner_component_cache_hits", "Component cache hits", registry=r),
            cache_misses=Counter(
                "extplane_runner_component_cache_misses", "Component cache misses", registry=r
            ),
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
        )
