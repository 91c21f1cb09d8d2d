"""Runner benchmarks, measured in one run on this machine (`python -m bench.runner`).

1. Per-request overhead (new Store + instantiate + call) of the minimal C component through the
   runner's `Runtime.run` vs the bare wasmtime-py floor (same Engine config, no runner code), plus a
   core-module floor from WAT.
2. The same for the Python-SDK hello sample (a route without host calls, and /echo with one).
3. First call of a new version: precompiled artifact (checked against its recorded sha256, then
   deserialize_file of the private copy) vs compiling.
4. Memory per loaded component (RSS delta).
5. End to end through `python -m runner` over HTTP (keep-alive httpx), c=1 and c=8.
6. Framework overhead per request (ASGI called directly, no server): Starlette route vs FastAPI route
   with the same handler, and FastAPI with a pydantic body parameter: why the runner uses Starlette.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import wasmtime
from wasmtime.component import Component, Linker

from bench.report import Row
from bundles.blobstore import FilesystemBlobStore
from core.settings import RunnerSettings
from runner._adapter import record
from runner._debug import InMemoryDebugSink
from runner._egress import EgressClient
from runner._engine import Runtime
from runner._host import HostServices
from runner._loader import ComponentCache
from runner._secrets import SecretsCache
from runner._services import egress_policy
from schema.envelope import ArtifactDigest, ExecuteRequest
from tests.runner.runner_helpers import (
    FIXTURES,
    ROOT,
    artifact_digests,
    envelope,
    manifest,
    publish,
    python_guest,
    start_runner,
)

ROWS: list[tuple[str, str, str]] = []


def _rss() -> int:
    """Resident set size of this process in bytes (Linux /proc; no extra dependency)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def timed(fn: Callable[[], object], n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def paired(
    fa: Callable[[], object], fb: Callable[[], object], n: int, warmup: int = 10
) -> tuple[list[float], list[float]]:
    """Alternate two workloads call by call, so both see the same machine load (2 shared cores)."""
    for _ in range(warmup):
        fa()
        fb()
    a: list[float] = []
    b: list[float] = []
    for _ in range(n):
        for fn, out in ((fa, a), (fb, b)):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1e6)
    return a, b


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def row(name: str, us: list[float]) -> float:
    med = statistics.median(us)
    ROWS.append((name, f"{med:,.0f} µs", f"p90 {p(us, 0.9):,.0f} µs"))
    return med


def _request() -> Any:
    return record(method="POST", path="/x", query="", headers=[], body="hello", body_base64=False)


def bare_component(
    engine: wasmtime.Engine, component: Component, *, wasi: bool, path: str = "/x"
) -> Callable[[], object]:
    linker = Linker(engine)
    if wasi:
        linker.add_wasip2()
    # Our interfaces as stubs that are never called (define_unknown_imports_as_traps would also
    # shadow the WASI 0.2.x versions add_wasip2 serves by semver).
    with linker.root() as root:
        for name, ext in component.type.imports(engine).items():
            if name.startswith("extplane:"):
                with root.add_instance(name) as inst:
                    for func in cast(Any, ext).ty.exports(engine):
                        inst.add_func(func, _never)
    handler_index = component.get_export_index("handler")
    assert handler_index is not None
    # The same request the runner builds from bench envelopes (tests.runner.runner_helpers.envelope).
    req = record(
        method="GET",
        path=path,
        query="",
        headers=[record(name="x-test", value="1")],
        body="hello",
        body_base64=False,
    )

    def call() -> object:
        store = wasmtime.Store(engine)
        if wasi:
            store.set_wasi(wasmtime.WasiConfig())
        store.set_fuel(10**9)
        store.set_epoch_deadline(1000)
        inst = linker.instantiate(store, component)
        func = inst.get_func(store, handler_index)
        assert func is not None
        return func(store, req)

    return call


def _never(*_args: object) -> None:
    raise RuntimeError("the bare floor calls no host function")


def bare_core_module(engine: wasmtime.Engine) -> Callable[[], object]:
    module = wasmtime.Module(
        engine, '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
    )
    linker = wasmtime.Linker(engine)

    def call() -> object:
        store = wasmtime.Store(engine)
        store.set_fuel(10**9)
        store.set_epoch_deadline(1000)
        inst = linker.instantiate(store, module)
        add = inst.exports(store)["add"]
        assert isinstance(add, wasmtime.Func)
        return add(store, 1, 2)

    return call


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.settings = RunnerSettings(env="test", data_dir=work)
        self.runtime = Runtime(self.settings)
        self.runtime.link(
            HostServices(
                secrets=SecretsCache(None, entries=4),
                storage=None,
                egress=EgressClient(egress_policy(self.settings)),
                on_denied=lambda _c: None,
            )
        )
        self.sink = InMemoryDebugSink(capacity=1000)

    def cache(self) -> ComponentCache:
        return ComponentCache(
            self.runtime.engine, FilesystemBlobStore(self.work / "blobs"), max_bytes=1 << 33
        )

    def via_runner(self, chash: str, path: str, method: str = "POST") -> Callable[[], object]:
        cache = self.cache()
        env = ExecuteRequest.model_validate(envelope(chash, path, method=method, body=b"hello"))

        def call() -> object:
            out = self.runtime.run(cache.get(chash, artifacts=env.artifacts), env, self.sink)
            assert out.error is None, out.error
            return out

        return call


@contextmanager
def echo_bench(prefix: str) -> Iterator[tuple[Bench, str, bytes]]:
    """A Bench in a temporary directory with the C echo fixture published: (bench, content hash,
    component bytes). The runtime is closed on the way out."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        bench = Bench(work)
        try:
            wasm = (FIXTURES / "echo.wasm").read_bytes()
            yield bench, publish(work, wasm, manifest(name="com.bench.echo"), work), wasm
        finally:
            bench.runtime.close()


def _recorded(chash: str) -> dict[str, ArtifactDigest]:
    """The artifact digests publish() recorded, as the gateway's envelope carries them."""
    return {fp: ArtifactDigest(**d) for fp, d in artifact_digests(chash).items()}


def main() -> None:
    print(run()[1])


def rows() -> list[Row]:
    """The figures of this module, for `python -m bench` (measured as `main` measures them)."""
    return run()[0]


def run() -> tuple[list[Row], str]:
    """Measure everything once; returns the summary rows and this module's own detailed report."""
    ROWS.clear()
    n = 300
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        b = Bench(work)
        engine = b.runtime.engine

        # 1. minimal C component
        echo_wasm = (FIXTURES / "echo.wasm").read_bytes()
        echo_hash = publish(work, echo_wasm, manifest(name="com.bench.echo"), work)
        floor_core = row(
            "core module floor (WAT add): Store+instantiate+call", timed(bare_core_module(engine), n)
        )
        echo_component = Component(engine, echo_wasm)
        bare_c, via_c = paired(
            bare_component(engine, echo_component, wasi=False), b.via_runner(echo_hash, "/x"), n
        )
        floor_c = row("C echo component, bare wasmtime-py", bare_c)
        runner_c = row("C echo component, runner Runtime.run", via_c)

        # 2. Python SDK hello
        hello_wasm, hello_art = python_guest(ROOT / "examples" / "hello")
        hello_doc = json.loads((ROOT / "examples" / "hello" / "manifest.json").read_text())
        hello_doc.pop("ui", None)  # publish() packs manifest + wasm only: no UI, so no cap:ui.proxy
        hello_doc["capabilities"] = [c for c in hello_doc["capabilities"] if c != "cap:ui.proxy"]
        hello_hash = publish(work, hello_wasm, hello_doc, work, artifact=hello_art)
        hello_component = b.cache().get(hello_hash, artifacts=_recorded(hello_hash)).component
        bare_py, via_py = paired(
            bare_component(engine, hello_component, wasi=True, path="/missing"),
            b.via_runner(hello_hash, "/missing", "GET"),
            150,
        )
        floor_py = row("Python hello (404 route, no host call), bare wasmtime-py", bare_py)
        runner_py = row("Python hello (404 route), runner Runtime.run", via_py)
        via_miss, via_echo = paired(
            b.via_runner(hello_hash, "/missing", "GET"), b.via_runner(hello_hash, "/echo"), 150
        )
        runner_py_echo = row("Python hello /echo (1 host call), runner Runtime.run", via_echo)
        host_call_us = runner_py_echo - statistics.median(via_miss)

        # 3. first call of a new version
        def first_call(wasm: bytes, artifact: bytes | None, name: str) -> float:
            d = Path(tempfile.mkdtemp(dir=work))
            chash = publish(d, wasm, manifest(name=name), d, artifact=artifact)
            cache = ComponentCache(engine, FilesystemBlobStore(d / "blobs"), max_bytes=1 << 33)
            env = ExecuteRequest.model_validate(envelope(chash, "/missing", method="GET"))
            t = time.perf_counter()
            b.runtime.run(cache.get(chash, artifacts=env.artifacts), env, b.sink)
            return (time.perf_counter() - t) * 1e3

        art_ms = first_call(hello_wasm, hello_art, "com.bench.first-a")
        compile_ms = first_call(hello_wasm, None, "com.bench.first-b")
        ROWS.append(("Python hello first call, precompiled artifact", f"{art_ms:,.1f} ms", ""))
        ROWS.append(("Python hello first call, compiling", f"{compile_ms:,.1f} ms", ""))

        # 4. memory per loaded component (distinct versions of hello, each loaded and called once)
        mem_cache = b.cache()
        kept = []
        k = 8
        hashes = [
            publish(
                work,
                hello_wasm,
                dict(hello_doc, version=f"1.0.{i + 1}"),
                work / f"mem{i}",
                artifact=hello_art,
            )
            for i in range(k)
        ]
        gc.collect()
        rss0 = _rss()
        for chash in hashes:
            kept.append(mem_cache.get(chash, artifacts=_recorded(chash)))  # stays loaded, as in the LRU
            env = ExecuteRequest.model_validate(envelope(chash, "/missing", method="GET"))
            b.runtime.run(kept[-1], env, b.sink)
        gc.collect()
        rss_each = (_rss() - rss0) / k / 2**20
        ROWS.append(("RSS per loaded Python component (+1 call)", f"{rss_each:,.1f} MiB", f"n={k}"))

        # 5. end to end over HTTP; 6. framework overhead
        e2e = asyncio.run(_http_bench(work, echo_wasm))
        asgi = asyncio.run(_asgi_overhead())
        for label, us in asgi:
            ROWS.append((f"ASGI overhead per request: {label}", f"{us:,.0f} µs", "direct call, no server"))
        b.runtime.close()

    width = max(len(r[0]) for r in ROWS) + 2
    out = ["", f"{'measurement':<{width}}{'median':>14}   {'spread'}", "-" * (width + 34)]
    out += [f"{name:<{width}}{med:>14}   {extra}" for name, med, extra in ROWS]
    out += [
        "",
        "ratios",
        f"  runner / bare, C echo:        {runner_c / floor_c:5.2f}x  (+{runner_c - floor_c:,.0f} µs)",
        f"  runner / bare, Python hello:  {runner_py / floor_py:5.2f}x  (+{runner_py - floor_py:,.0f} µs)",
        f"  Python /echo vs 404 (one host call):  +{host_call_us:,.0f} µs",
        f"  C component floor / core module floor: {floor_c / floor_core:5.2f}x",
        f"  first call: compile / artifact:       {compile_ms / art_ms:5.0f}x",
    ]
    for label, rps, p50, p99 in e2e:
        out.append(f"  HTTP e2e {label}: {rps:,.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    summary = [
        Row("runner Runtime.run, C echo component", runner_c, "µs", floor_c, baseline_figure="bare wasmtime"),
        Row(
            "runner Runtime.run, Python hello (404 route)",
            runner_py,
            "µs",
            floor_py,
            baseline_figure="bare wasmtime",
        ),
        Row(
            "runner Runtime.run, Python hello /echo (1 host call)",
            runner_py_echo,
            "µs",
            runner_py_echo - host_call_us,
            baseline_figure="404 route",
        ),
        Row(
            "bare C component call (Store+instantiate+call)",
            floor_c,
            "µs",
            floor_core,
            baseline_figure="core module",
        ),
        Row(
            "first call of a new version, compiling",
            compile_ms,
            "ms",
            art_ms,
            baseline_figure="precompiled artifact",
        ),
        Row("RSS per loaded Python component (+1 call)", rss_each, "MiB", extra={"n": k}),
    ]
    (base_label, base_us), *others = asgi
    summary.append(Row(f"ASGI per request, {base_label}", base_us, "µs"))
    for label, us in others:
        summary.append(Row(f"ASGI per request, {label}", us, "µs", base_us, baseline_figure=base_label))
    for label, rps, p50, p99 in e2e:
        summary.append(Row(f"runner over HTTP {label}", rps, "req/s", extra={"p50_ms": p50, "p99_ms": p99}))
    return summary, "\n".join(out)


async def _asgi_overhead() -> list[tuple[str, float]]:
    from fastapi import FastAPI
    from pydantic import BaseModel
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    class Body(BaseModel):
        a: int

    async def plain(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    star = Starlette(routes=[Route("/v1/x", plain, methods=["POST"])])
    fast = FastAPI()
    fast.add_api_route("/v1/x", plain, methods=["POST"])
    fast_model = FastAPI()

    async def modelled(body: Body) -> Response:
        return Response(body.model_dump_json(), media_type="application/json")

    fast_model.add_api_route("/v1/x", modelled, methods=["POST"])
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/v1/x",
        "raw_path": b"/v1/x",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("x", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"a": 1}', "more_body": False}

    async def send(_message: MutableMapping[str, Any]) -> None:
        return None

    out = []
    for label, app in (("Starlette", star), ("FastAPI", fast), ("FastAPI + pydantic body", fast_model)):
        lat = []
        for i in range(3000):
            t = time.perf_counter()
            await app(dict(scope), receive, send)
            if i >= 300:
                lat.append((time.perf_counter() - t) * 1e6)
        out.append((label, statistics.median(lat)))
    return out


async def _http_bench(work: Path, echo_wasm: bytes) -> list[tuple[str, float, float, float]]:
    runner = start_runner(work / "http", "postgresql://postgres@127.0.0.1:5432/unused", threads=2)
    try:
        chash = publish(runner.data_dir, echo_wasm, manifest(name="com.bench.http"), work)
        body = json.dumps(envelope(chash, "/x", body=b"hello")).encode()
        results = []
        async with runner.client() as client:
            for _ in range(50):
                assert (await client.post("/v1/execute", content=body)).status_code == 200
            for conc, total in ((1, 400), (8, 800)):
                lat: list[float] = []

                async def worker(
                    count: int, client: httpx.AsyncClient = client, lat: list[float] = lat
                ) -> None:
                    for _ in range(count):
                        t = time.perf_counter()
                        resp = await client.post("/v1/execute", content=body)
                        lat.append((time.perf_counter() - t) * 1e3)
                        assert (
                            resp.status_code == 200 and base64.b64decode(resp.json()["body_b64"]) == b"hello"
                        )

                t0 = time.perf_counter()
                await asyncio.gather(*(worker(total // conc) for _ in range(conc)))
                elapsed = time.perf_counter() - t0
                results.append((f"c={conc}", total / elapsed, statistics.median(lat), p(lat, 0.99)))
        return results
    finally:
        runner.stop()


if __name__ == "__main__":
    main()
