"""Where a hot-path request's CPU goes: `python -m bench.hotpath_profile [--duration S] [--conns 1,32]
[--rate HZ] [--out DIR] [--hop frame|http|local] [--runner-cpus spread|none|LIST] [--skip-python-guest]`
(docs/performance.md has the figures and the method). The gateway talks to the runner over `--hop`
(default the framed hop); the runner is pinned as bench/gateway.py pins it (`--runner-cpus`). With
`--hop local` the gateway is co-located (EXT_RUNNER_URL=local:) and pinned that way itself.

Starts the same embedded stack as bench/gateway.py (Postgres + Redis, `python -m runner`,
`python -m api.gateway`, one uvicorn worker each, the C echo fixture and the Python hello sample), plus
two floors: a bare ASGI hello-world and a Starlette one on uvicorn. For each target and concurrency:

1. wrk alone for `--duration` seconds: requests/s, p50/p99, and each server process's CPU time
   (utime + stime from /proc/PID/stat, all threads) divided by the requests it answered;
2. the same load again with `py-spy record --format raw --full-filenames` attached to each server
   process by pid (no `--idle`: only samples of threads that were running), and the samples put into
   the categories of bench/anatomy.py.

Run 1 gives the absolute figures (py-spy pauses the process it samples, so throughput under it is a
little lower); run 2 gives the split. Raw py-spy files and a JSON summary go to `--out`. Needs `wrk`
(apt-get install -y wrk) and `py-spy` (pip install py-spy; not a project dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench._interleave import Result
from bench.anatomy import CATEGORIES, read, table
from bench.gateway import (
    AUTH,
    HELLO_APP,
    ROOT,
    STARLETTE_APP,
    Target,
    _drop,
    _wrk_ms,
    runner_cpus,
    seed_registry,
    services,
)
from tests.gateway.conftest import free_port, wait_http

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    target: str
    conns: int
    result: Result
    requests: int
    cpu_us_per_request: dict[str, float]  # process -> CPU µs per request (run 1)
    failed: int = 0  # non-2xx answers and timeouts in run 1
    raw: dict[str, str] = field(default_factory=dict)  # process -> py-spy raw file (in --out)
    profiled_rps: float = 0.0  # run 2, under py-spy
    loadavg: str = ""  # /proc/loadavg after run 1: the machine is shared


def run_wrk(target: Target, conns: int, duration: float, work: Path) -> tuple[Result, int]:
    """wrk as bench.gateway runs it, with a 10 s request timeout; (result, non-2xx + timeouts) where
    bench.gateway raises: on a shared 2-core machine a slow run is a figure, not a failure."""
    script = work / f"wrk-{conns}.lua"
    lines = [f"wrk.method = {json.dumps(target.method)}", f"wrk.body = {json.dumps(target.body.decode())}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in target.headers]
    script.write_text("\n".join(lines) + "\n")
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{int(duration)}s", "--timeout", "10s", "--latency"]
    out = subprocess.run([*argv, "-s", str(script), target.url], capture_output=True, text=True, check=True)
    text = out.stdout
    bad = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|timeout):?\s*(\d+)", text))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    return Result(rps, _wrk_ms(text, "50%"), _wrk_ms(text, "99%")), bad


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid` so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy not found: pip install py-spy (into this venv)")
    return found


@contextlib.contextmanager
def server(argv: list[str], env: dict[str, str], health: str) -> Iterator[int]:
    """A server process (its pid), started in the repository, healthy before the body runs."""
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(health, proc=proc, deadline_s=60)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(
    target: Target, pids: dict[str, int], conns: int, args: argparse.Namespace, work: Path
) -> Measured:
    run_wrk(target, 4, 2, work)  # warm caches, components, keep-alive pools
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    result, failed = run_wrk(target, conns, args.duration, work)
    elapsed = time.perf_counter() - started
    requests = max(1, round(result.rps * elapsed))
    cpu = {name: (cpu_seconds(pid) - before[name]) * 1e6 / requests for name, pid in pids.items()}
    measured = Measured(target.name, conns, result, requests, cpu, failed=failed, loadavg=_loadavg())
    slug = f"{_slug(target.name)}-c{conns}"
    spies = []
    for name, pid in pids.items():
        out = args.out / f"{slug}-{name}.txt"
        argv = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--full-filenames"]
        argv += ["--rate", str(args.rate), "--duration", str(args.duration + 1), "-o", str(out)]
        if args.native:
            argv.append("--native")  # native leaves tell a thread blocked in C from one running C
        if args.nonblocking:
            # py-spy otherwise pauses the process per sample: the paused wall time then counts
            # against runner._inline's budget, which demotes every co-located install to the pool.
            argv.append("--nonblocking")
        spies.append((name, out, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    time.sleep(0.5)  # py-spy attached before the load starts; samples of idle threads are dropped
    measured.profiled_rps = run_wrk(target, conns, args.duration, work)[0].rps
    for name, out, spy in spies:
        _, err = spy.communicate(timeout=args.duration + 60)
        if spy.returncode != 0 or not out.exists():
            raise RuntimeError(f"py-spy on {name} failed: {err.decode(errors='replace')[-500:]}")
        measured.raw[name] = out.name
    return measured


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-").lower()


def report(results: list[Measured], out: Path, *, top: int = 3) -> str:
    """Markdown: the wrk figures, then per target the category table and its top frames."""
    lines = [
        "| target | c | req/s | p50 ms | p99 ms | failed | CPU µs/req | req/s under py-spy | load avg |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for m in results:
        cpu = ", ".join(f"{name} {us:,.0f}" for name, us in m.cpu_us_per_request.items())
        r = m.result
        lines.append(
            f"| {m.target} | {m.conns} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {m.failed} | {cpu} "
            f"| {m.profiled_rps:,.0f} | {m.loadavg} |"
        )
    for m in results:
        anatomies = {name: read(out / raw) for name, raw in m.raw.items()}
        per_req = {name: m.cpu_us_per_request[name] for name in m.raw}
        lines += [
            "",
            f"### {m.target}, c={m.conns}",
            "",
            "share of running samples (CPU µs per request):",
            "",
        ]
        lines.append(table(anatomies, cpu_us_per_request=per_req))
        lines += ["", "top frames (share of running samples):", ""]
        for name, anatomy in anatomies.items():
            for category in CATEGORIES:
                frames = ", ".join(
                    f"`{label}` {n / anatomy.total * 100:.1f}%" for label, n in anatomy.top(category, top)
                )
                if frames:
                    lines.append(f"* {name} / {category}: {frames}")
    return "\n".join(lines)


def save(results: list[Measured], out: Path) -> None:
    (out / "summary.json").write_text(json.dumps([asdict(m) for m in results], indent=2))


def load(out: Path) -> list[Measured]:
    """The measurements of an earlier run (its summary.json), to report them with the current rules."""
    results = []
    for doc in json.loads((out / "summary.json").read_text()):
        doc["result"] = Result(**doc["result"])
        results.append(Measured(**doc))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath_profile")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per run")
    parser.add_argument("--conns", default="1,32", help="comma-separated wrk connection counts")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=None, help="directory for raw py-spy files + JSON")
    parser.add_argument("--no-native", dest="native", action="store_false", help="no native frames")
    parser.add_argument(
        "--nonblocking", action="store_true", help="py-spy does not pause the process (--hop local)"
    )
    parser.add_argument("--skip-python-guest", action="store_true", help="only the C echo guest")
    parser.add_argument(
        "--hop", choices=("frame", "http", "local"), default="frame", help="gateway->runner hop"
    )
    parser.add_argument("--runner-cpus", default="spread", help="EXT_CPUS of the runner (bench.gateway)")
    parser.add_argument("--report", type=Path, default=None, help="re-report an earlier --out, no run")
    args = parser.parse_args(argv)
    if args.report is not None:
        print(report(load(args.report), args.report))
        return 0
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found (apt-get install -y wrk)")
    py_spy()
    args.out = args.out or Path(tempfile.mkdtemp(prefix="hotpath-profile-"))
    args.out.mkdir(parents=True, exist_ok=True)
    conns = [int(c) for c in args.conns.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp:
        work = Path(tmp)
        with services(work) as (server_url, redis_url):
            results = _run(work, server_url, redis_url, conns, args)
    print(report(results, args.out))
    print(f"\nraw py-spy output and summary.json in {args.out}")
    return 0


def _run(
    work: Path, server_url: str, redis_url: str, conns: list[int], args: argparse.Namespace
) -> list[Measured]:
    db_url, data_dir, hashes, token = seed_registry(
        work, server_url, database=f"extplane_prof_{os.getpid()}", python_guest=not args.skip_python_guest
    )
    env = {**os.environ, "EXT_ENV": "test", "EXT_LOG_LEVEL": "warning", "EXT_RUNNER_AUTH": AUTH}
    (work / "hello_app.py").write_text(HELLO_APP)
    (work / "starlette_app.py").write_text(STARLETTE_APP)
    hello_env = {**env, "PYTHONPATH": str(work)}
    uv = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    hello_port, star_port, gw_port, runner_port = free_port(), free_port(), free_port(), free_port()
    frame_port = free_port()
    runner_env = {
        **env,
        "EXT_DATA_DIR": str(data_dir),
        "EXT_DATABASE_URL": db_url,
        "EXT_PORT": str(runner_port),
        "EXT_FRAME_PORT": str(frame_port),
        "EXT_CPUS": runner_cpus(args.runner_cpus, 0),
    }
    hop_url = {
        "frame": f"frame://127.0.0.1:{frame_port}",
        "http": f"http://127.0.0.1:{runner_port}",
        "local": "local:",
    }[args.hop]
    gw_env = {
        **(runner_env if args.hop == "local" else env),  # co-located: the runner's settings too
        "EXT_DATABASE_URL": db_url,
        "EXT_REDIS_URL": redis_url,
        "EXT_RUNNER_URL": hop_url,
        "EXT_RUNNER_UI_URL": f"http://127.0.0.1:{runner_port}",
    }
    results: list[Measured] = []
    try:
        with contextlib.ExitStack() as stack:
            hello = stack.enter_context(
                server(
                    [sys.executable, "-m", "uvicorn", "hello_app:app", "--port", str(hello_port), *uv],
                    hello_env,
                    f"http://127.0.0.1:{hello_port}/",
                )
            )
            star = stack.enter_context(
                server(
                    [sys.executable, "-m", "uvicorn", "starlette_app:app", "--port", str(star_port), *uv],
                    hello_env,
                    f"http://127.0.0.1:{star_port}/",
                )
            )
            runner = stack.enter_context(
                server(
                    [sys.executable, "-m", "runner"], runner_env, f"http://127.0.0.1:{runner_port}/healthz"
                )
            )
            gateway = stack.enter_context(
                server(
                    [sys.executable, "-m", "api.gateway", "--port", str(gw_port), "--workers", "1"],
                    gw_env,
                    f"http://127.0.0.1:{gw_port}/healthz",
                )
            )
            plan: list[tuple[Target, dict[str, int]]] = [
                (Target("bare uvicorn hello (ASGI)", f"http://127.0.0.1:{hello_port}/"), {"hello": hello}),
                (Target("uvicorn + Starlette hello", f"http://127.0.0.1:{star_port}/"), {"starlette": star}),
            ]
            headers = (("authorization", f"Bearer {token}"), ("content-type", "application/json"))
            for name in hashes:
                url = f"http://127.0.0.1:{gw_port}/api/ext/{name}/echo"
                if args.hop == "local":
                    target = Target(f"gateway+runner (local:), {name}", url, "POST", b'{"hi":1}', headers)
                    plan.append((target, {"gateway": gateway}))
                    continue
                hop = "=frame=>" if args.hop == "frame" else "->"
                target = Target(f"gateway{hop}runner, {name}", url, "POST", b'{"hi":1}', headers)
                plan.append((target, {"gateway": gateway, "runner": runner}))
            for target, pids in plan:
                for c in conns:
                    print(f"{target.name} c={c} ...", file=sys.stderr, flush=True)
                    results.append(measure(target, pids, c, args, work))
                    save(results, args.out)  # so far: a later failure keeps what was measured
    finally:
        asyncio.run(_drop(db_url))
    return results


if __name__ == "__main__":
    sys.exit(main())
