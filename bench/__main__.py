"""`python -m bench` (`make bench`): every benchmark, one table, the same as JSON.

Runs, in one process, each module's `rows()` (baseline and subject interleaved inside each module):
components (compile vs deserialize of the Python sample, memory per loaded component), installs
(gateway install resolution at 10 vs 10,000 installs, cold and cached), runner (per-call overhead vs
bare wasmtime-py, first call, RSS, ASGI and HTTP), conversion (the runner's component value
conversion vs wasmtime-py's own, call by call), thread_affinity (Runtime.run on 1/2/4 threads, the
process pinned to one CPU vs on every CPU), extism_compare (the runner's per-call cost vs the
Extism Python SDK's fresh Plugin per call), gateway (hop transport, limiter round trip, end-to-end
req/s and p50/p99 at c=1/8/32/64 vs bare uvicorn and uvicorn+Starlette), deadlines (answer time -
timeout of a spinning guest, a victim tenant's latency during another tenant's flood), debug_stream
(execute with the Redis debug sink vs memory, log-to-SSE delay), control_plane (publish and install
vs an empty one-activity workflow), load, and hostile (issue 11's attacks against a full stack while
another tenant's benign call is timed; bench/hostile.py).
Then prints ONE table (figure, value, baseline, ratio) and writes it to
bench/results/latest.json. Each module's detailed report stays `python -m bench.<name>`.

    python -m bench [--only installs,components] [--skip control_plane] [--quick] [--out PATH]

Postgres/Redis: EXT_DATABASE_URL / EXT_REDIS_URL when set, else one embedded pair started here and
shared by installs, gateway and debug_stream (control_plane starts its own full stack, Temporal
included). A module that fails is reported on stderr and in the JSON's "errors"; the others still run,
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.report import LATEST, Row, grouped, render, write_json

ORDER = (
    "components",
    "installs",
    "runner",
    "conversion",
    "thread_affinity",
    "extism_compare",
    "gateway",
    "deadlines",
    "debug_stream",
    "control_plane",
    "load",
    "hostile",
)
NEEDS_SERVICES = frozenset({"installs", "gateway", "deadlines", "debug_stream"})


def _runners(quick: bool) -> dict[str, Callable[[], list[Row]]]:
    out: dict[str, Callable[[], list[Row]]] = {}
    for name in ORDER:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                continue  # bench/load.py is optional
            raise
        rows: Callable[..., list[Row]] | None = getattr(module, "rows", None)
        if not callable(rows):
            continue
        if quick and name == "gateway":
            out[name] = functools.partial(rows, duration=1, skip_python_guest=True)
        elif quick and name == "deadlines":
            out[name] = functools.partial(rows, spins=5, flood_seconds=5.0)
        elif quick and name == "debug_stream":
            out[name] = functools.partial(rows, calls=120)
        elif quick and name == "control_plane":
            out[name] = functools.partial(rows, installs=10, publishes=3, skip_python_sample=True)
        elif quick and name == "installs":
            out[name] = functools.partial(rows, samples=60)
        elif quick and name == "load":
            out[name] = functools.partial(rows, calls=2000, concurrency=16)
        elif quick and name == "conversion":
            out[name] = functools.partial(rows, rounds=500)
        elif quick and name == "thread_affinity":
            out[name] = functools.partial(rows, calls=600, rounds=1)
        elif quick and name == "extism_compare":
            out[name] = functools.partial(rows, rounds=500)
        elif quick and name == "components":
            out[name] = functools.partial(rows, rounds=1, k=3)
        else:
            out[name] = rows
    return out


@contextlib.contextmanager
def _shared_services(enabled: bool) -> Iterator[None]:
    """One Postgres + Redis for the modules that need them, unless the environment names some."""
    if not enabled or (os.environ.get("EXT_DATABASE_URL") and os.environ.get("EXT_REDIS_URL")):
        yield
        return
    from bench.gateway import services

    saved = {k: os.environ.get(k) for k in ("EXT_DATABASE_URL", "EXT_REDIS_URL")}
    with tempfile.TemporaryDirectory(prefix="bench-services-") as tmp, services(Path(tmp)) as (db, redis):
        os.environ["EXT_DATABASE_URL"], os.environ["EXT_REDIS_URL"] = db, redis
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="every benchmark, one table")
    parser.add_argument("--only", default="", help="comma-separated modules to run (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated modules to leave out")
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test of the suite)")
    parser.add_argument("--out", type=Path, default=LATEST, help="JSON output (default: %(default)s)")
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    runners = {n: fn for n, fn in _runners(args.quick).items() if (not only or n in only) and n not in skip}
    rows: list[Row] = []
    errors: dict[str, str] = {}
    # Benches' own progress goes to stderr: stdout carries the one table.
    names = list(runners)
    # installs..debug_stream share the services; control_plane (own stack) and load run after them.
    first = min((i for i, n in enumerate(names) if n in NEEDS_SERVICES), default=len(names))
    # None needs them: the three slices below are then everything, nothing and nothing.
    last = max((i for i, n in enumerate(names) if n in NEEDS_SERVICES), default=first - 1)
    # The benches' own progress goes to stderr: stdout carries the one table.
    with contextlib.redirect_stdout(sys.stderr):
        for name in names[:first]:
            _run_one(name, runners[name], rows, errors)
        with _shared_services(last >= first):
            for name in names[first : last + 1]:
                _run_one(name, runners[name], rows, errors)
        for name in names[last + 1 :]:
            _run_one(name, runners[name], rows, errors)
    print(render(rows))
    path = write_json(rows, args.out, errors=errors)
    print(f"\n{len(rows)} figures from {len(runners) - len(errors)} benches -> {path}")
    for name, err in errors.items():
        print(f"FAILED {name}: {err}", file=sys.stderr)
    return 1 if errors else 0


def _run_one(name: str, fn: Callable[[], list[Row]], rows: list[Row], errors: dict[str, str]) -> None:
    started = time.perf_counter()
    print(f"bench {name} ...", file=sys.stderr, flush=True)
    try:
        got = fn()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        errors[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
        return
    rows.extend(grouped(name, got))
    print(f"bench {name}: {len(got)} figures in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
