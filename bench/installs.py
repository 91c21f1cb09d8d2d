"""Gateway install resolution at 10 vs 10,000 installs: `python -m bench.installs [--samples N]`.

Two throwaway databases (uniquely named, migrated with core.migrations, dropped at the end) hold 10
and 10,000 installs (10 extensions x 1 or 1,000 tenants), inserted by SQL. The gateway's own
`InstallResolver` (api.gateway.installs: registry.read_gateway query + envelope preparation + TTL
cache) resolves random (tenant, extension) keys in both, alternating call by call:

* cold: the key is invalidated first, so each call runs the one registry query and prepares the install;
* cached hit: the steady state (no Postgres), timed over batches of 200 calls.

Postgres from EXT_DATABASE_URL, else an embedded server started for the run (bench.gateway.services).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from api.gateway.installs import InstallResolver
from bench.report import Row, render
from core.db import create_pool
from core.migrations import ensure_database, migrate

SIZES = (10, 10_000)
EXTENSIONS = 10
HIT_BATCH = 200

_SEED = """
INSERT INTO trust_keys (key_id, publisher, public_key_pem) VALUES ('ed25519:bench', 'bench', 'x');
INSERT INTO bundles (content_hash, size_bytes, storage_key, signature, signer_key_id, verified_at)
    SELECT 'sha256:' || encode(sha256(('bundle-' || g)::bytea), 'hex'), 1, 'k', 's', 'ed25519:bench', now()
    FROM generate_series(1, {extensions}) g;
INSERT INTO extensions (name, publisher)
    SELECT 'com.bench.ext' || g, 'bench' FROM generate_series(1, {extensions}) g;
INSERT INTO versions (extension_id, version, content_hash, manifest, publish_workflow_id)
    SELECT e.id, '1.0.0', 'sha256:' || encode(sha256(('bundle-' || substr(e.name, 14))::bytea), 'hex'),
           '{{"limits": {{"timeout_ms": 5000, "memory_mb": 64}}, "egress": []}}'::jsonb, 'bench'
    FROM extensions e;
INSERT INTO api_endpoints (version_id, method, path)
    SELECT v.id, t.m, t.p FROM versions v, (VALUES ('GET', '/status'), ('POST', '/items/:id')) AS t(m, p);
INSERT INTO installs (tenant_id, extension_id, version_id, status, granted_capabilities)
    SELECT 'tenant-' || t, v.extension_id, v.id, 'active', '{{cap:log.emit,cap:context.read}}'
    FROM generate_series(1, {tenants}) t, versions v;
ANALYZE;
"""


def _db_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + f"/{name}"


async def _seed(db_url: str, installs: int) -> list[tuple[str, str]]:
    await ensure_database(db_url)
    await migrate(db_url)
    tenants = max(1, installs // EXTENSIONS)
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(_SEED.format(extensions=EXTENSIONS, tenants=tenants))
        count = await conn.fetchval("SELECT count(*) FROM installs")
        assert count == installs, count
    finally:
        await conn.close()
    exts = [f"com.bench.ext{e}" for e in range(1, EXTENSIONS + 1)]
    return [(f"tenant-{t}", ext) for t in range(1, tenants + 1) for ext in exts]


async def _drop(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(_db_url(server_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _resolver(pool: asyncpg.Pool) -> InstallResolver:
    return InstallResolver(
        pool, default_rps=100.0, default_burst=200, ttl_s=3600.0, negative_ttl_s=5.0, max_entries=100_000
    )


async def _measure(server_url: str, samples: int) -> dict[str, list[float]]:
    """Per-size cold and hit latencies in µs, sizes alternating call by call."""
    run = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    names = {n: f"extplane_bench_installs{n}_{run}" for n in SIZES}
    try:
        keys = {n: await _seed(_db_url(server_url, names[n]), n) for n in SIZES}
        pools = {n: await create_pool(_db_url(server_url, names[n]), min_size=1, max_size=2) for n in SIZES}
        try:
            resolvers = {n: _resolver(pools[n]) for n in SIZES}
            rng = random.Random(8)
            out: dict[str, list[float]] = {f"{kind}{n}": [] for n in SIZES for kind in ("cold", "hit")}
            for i in range(samples + 20):  # the first 20 rounds warm connections and plans
                for n in SIZES:
                    key = rng.choice(keys[n])
                    resolver = resolvers[n]
                    resolver.cache.invalidate(key)
                    t = time.perf_counter()
                    found = await resolver.resolve(*key)
                    cold = time.perf_counter() - t
                    assert found is not None and found.active
                    t = time.perf_counter()
                    for _ in range(HIT_BATCH):
                        await resolver.resolve(*key)
                    hit = (time.perf_counter() - t) / HIT_BATCH
                    if i >= 20:
                        out[f"cold{n}"].append(cold * 1e6)
                        out[f"hit{n}"].append(hit * 1e6)
            return out
        finally:
            for pool in pools.values():
                await pool.close()
    finally:
        for name in names.values():
            await _drop(server_url, name)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rows(samples: int = 300, server_url: str | None = None) -> list[Row]:
    """Measure (Postgres from `server_url`, else EXT_DATABASE_URL, else an embedded server)."""
    if server_url is None:
        from bench.gateway import services

        with tempfile.TemporaryDirectory(prefix="bench-installs-") as tmp, services(Path(tmp)) as (url, _r):
            return rows(samples, url)
    m = asyncio.run(_measure(server_url, samples))
    med = {k: statistics.median(v) for k, v in m.items()}
    small, large = SIZES

    def spread(k: str) -> dict[str, float]:
        return {"p90": _p(m[k], 0.9), "n": len(m[k])}

    return [
        Row(
            f"install resolution, cold (1 query), {small} installs",
            med[f"cold{small}"],
            "µs",
            extra=spread(f"cold{small}"),
        ),
        Row(
            f"install resolution, cold (1 query), {large:,} installs",
            med[f"cold{large}"],
            "µs",
            med[f"cold{small}"],
            baseline_figure=f"cold, {small} installs",
            extra=spread(f"cold{large}"),
        ),
        Row(
            f"install resolution, cached hit, {small} installs",
            med[f"hit{small}"],
            "µs",
            med[f"cold{small}"],
            baseline_figure=f"cold, {small} installs",
            extra=spread(f"hit{small}"),
        ),
        Row(
            f"install resolution, cached hit, {large:,} installs",
            med[f"hit{large}"],
            "µs",
            med[f"hit{small}"],
            baseline_figure=f"cached hit, {small} installs",
            extra=spread(f"hit{large}"),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.installs")
    parser.add_argument("--samples", type=int, default=300, help="cold resolutions per size")
    args = parser.parse_args()
    print(render(rows(args.samples)))


if __name__ == "__main__":
    main()
