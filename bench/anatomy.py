"""Per-request anatomy from py-spy samples: `python -m bench.anatomy RAW [RAW ...] [--requests N]`.

Reads py-spy's collapsed stacks (`py-spy record --format raw --full-filenames`: one line per distinct
stack, `frame;frame;...;frame COUNT`, root first, each frame `function (path:line)`) and puts every
sample into one category of the hot path:

    framework      uvicorn, httptools, h11, starlette, fastapi, anyio
    auth           api.auth, api.token_cache, api.gateway.auth
    limiter        api.gateway.ratelimit, api.gateway.resp, redis-py
    hop            the gateway's runner client (and the asyncio streams it reads with), httpx/httpcore
    serialization  json, base64, pydantic (validate/dump JSON), the gateway's envelope splicing
    instantiate    wasmtime Store/Linker/instantiate/WASI set-up and teardown, the component cache
    conversion     runner._adapter and wasmtime's component value lowering/lifting, response mapping
    guest          the call into wasm (the guest's own time) and the host functions it calls
    executor       the hand-off to and from the runner's guest threads (concurrent.futures, threading)
    loop           asyncio / the event loop itself (uvloop's native time shows as its Python caller)
    app            the rest of our own hot-path code (routing, install cache, headers, execlog, metrics)
    other          everything else

A sample's category is decided by its *leaf-most* frame that some rule claims (rules are tried in
order, the first that matches wins); frames no rule claims (ctypes wrappers such as
`wasmtime/_bindings.py`, `typing`, `enum`...) are transparent, so the caller decides. A rule may
require an ancestor (`under`), which is how `asyncio/streams.py` counts as the hop when the runner
client called it but as the loop otherwise.

This module only parses text: py-spy is needed to record (bench/hotpath_profile.py), not here.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CATEGORIES = (
    "framework",
    "auth",
    "limiter",
    "hop",
    "serialization",
    "instantiate",
    "conversion",
    "guest",
    "executor",
    "loop",
    "app",
    "other",
)
# Not CPU: a thread blocked on a lock, a condition, epoll (idle) or waiting for the GIL (gil). py-spy's
# own idle filter misses threads blocked in C (queue.get, Condition.wait) on this machine, so the
# profile is taken with --native and these are told apart by their native leaf frames.
WAITING = ("idle", "gil")

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    file: str  # as py-spy wrote it, `/` separated; "" for a label frame (thread or process name)

    @property
    def native(self) -> bool:
        """A C/Rust/libc frame (py-spy --native), not Python code or a label frame."""
        return bool(self.file) and not (self.file.endswith(".py") or self.file.startswith("<"))

    @property
    def label(self) -> str:
        return f"{self.function} ({self.file})" if self.file else self.function


@dataclass(frozen=True, slots=True)
class Rule:
    """Claims a frame whose file contains `file` (and whose function is `function`, when given),
    provided some frame closer to the root has a file containing `under` (when given)."""

    category: str
    file: str
    function: str = ""  # a function's name or the last or first part of its qualified name
    under: str = ""
    native: bool = False  # a rule for native frames (C, Rust, libc); Python frames skip it

    def claims(self, frame: Frame, ancestors: Sequence[Frame]) -> bool:
        if (
            self.native != frame.native
            or self.file not in frame.file
            or (self.function and not _names(frame.function, self.function))
        ):
            return False
        return not self.under or any(self.under in a.file for a in ancestors)


def _names(qualified: str, name: str) -> bool:
    """`Runtime._response`, `call_bounded.<locals>.run` and `func_impl.<locals>.run` (py-spy writes
    qualified names) are named by `_response`, `run` and `func_impl`."""
    return qualified == name or qualified.endswith("." + name) or qualified.startswith(name + ".")


def _site(package: str) -> str:
    """A third-party package's directory as it appears in a full path (…/site-packages/NAME/)."""
    return f"/{package}/"


TRANSPARENT = ""  # a rule of this category makes its frame transparent: the caller decides

_BLOCKING = (
    "PyThread_acquire_lock_timed",
    "epoll_wait",
    "epoll_pwait",
    "pthread_cond_wait",
    "pthread_cond_timedwait",
    "pthread_cond_clockwait",
    "sem_wait",
    "sem_timedwait",
    "sem_clockwait",
    "__futex_abstimed_wait_common",
    "poll",
    "select",
    "nanosleep",
    "clock_nanosleep",
)

RULES: tuple[Rule, ...] = (
    # -- native frames: waiting (not CPU) or the C HTTP parser; any other native frame is transparent
    Rule("gil", "", "take_gil", native=True),
    *(Rule("idle", "", name, native=True) for name in _BLOCKING),
    Rule("framework", "httptools", native=True),
    # -- ctypes wrappers of the C API: their cost is their caller's (a Store, a call, a conversion)
    Rule(TRANSPARENT, "/wasmtime/_bindings.py"),
    Rule(TRANSPARENT, "/wasmtime/_ffi.py"),
    Rule(TRANSPARENT, "/ctypes/"),
    # -- the guest: the one call into wasm, and host functions the guest calls back into
    Rule("guest", "/runner/_adapter.py", "run"),  # call_bounded's closure around func_call
    Rule("guest", "/wasmtime/component/_enter.py"),
    Rule("guest", "/runner/_adapter.py", "_catch_exceptions"),
    Rule("guest", "/runner/_host.py"),
    Rule("guest", "/runner/_egress"),
    Rule("guest", "/runner/_storage.py"),
    Rule("guest", "/runner/_secrets.py"),
    Rule("guest", "/runner/_debug"),
    Rule("guest", "/runner/_invocation.py"),
    # -- component value conversion (Python <-> C <-> wasm)
    Rule("conversion", "/wasmtime/component/_types.py"),
    Rule("conversion", "/wasmtime/component/_func.py"),
    Rule("conversion", "/runner/_adapter.py"),
    Rule("conversion", "/runner/_packed.py"),
    Rule("conversion", "/runner/_engine.py", "_response"),
    Rule("conversion", "/runner/_engine.py", "_request_record"),
    Rule("conversion", "/wasmtime/component/_linker.py", "func_impl"),
    # -- Store, WASI, limits, instantiate, component lookup, teardown
    Rule("instantiate", "/wasmtime/component/_linker.py"),
    Rule("instantiate", "/wasmtime/component/_instance.py"),
    Rule("instantiate", "/wasmtime/component/_component.py"),
    Rule("instantiate", "/runner/_loader.py"),
    Rule("instantiate", "/runner/_limits.py"),
    Rule("instantiate", "/runner/_deadline.py"),
    Rule("instantiate", "/runner/_engine.py"),
    Rule("instantiate", "/schema/capabilities.py"),
    Rule("instantiate", _site("wasmtime")),
    # -- JSON, base64, pydantic models of the envelope
    Rule("serialization", "/json/"),
    Rule("serialization", "/base64.py"),
    Rule("serialization", _site("pydantic")),
    Rule("serialization", _site("pydantic_core")),
    Rule("serialization", "/registry/envelope.py", "envelope"),
    Rule("serialization", "/api/gateway/http.py", "map_runner_reply"),
    Rule("serialization", "/schema/envelope.py"),
    # -- auth
    Rule("auth", "/api/auth.py"),
    Rule("auth", "/api/token_cache.py"),
    Rule("auth", "/api/gateway/auth.py"),
    Rule("auth", "/hashlib"),
    Rule("auth", "/hmac.py"),
    # -- the Redis rate limiter
    Rule("limiter", "/api/gateway/ratelimit.py"),
    Rule("limiter", "/api/gateway/resp.py"),
    Rule("limiter", "asyncio/", under="/api/gateway/resp.py"),
    Rule("limiter", _site("redis")),
    # -- the gateway -> runner hop (client side)
    Rule("hop", "/api/gateway/runner_client.py"),
    Rule("hop", "asyncio/", under="/api/gateway/runner_client.py"),
    Rule("hop", _site("httpx")),
    Rule("hop", _site("httpcore")),
    # -- the hand-off to the runner's guest threads
    Rule("executor", "concurrent/futures/"),
    Rule("executor", "/threading.py"),
    Rule("executor", "/queue.py"),
    Rule("executor", "/runner/_admission.py"),
    Rule("executor", "asyncio/", function="run_in_executor"),
    Rule("executor", "asyncio/futures.py", "_chain_future"),
    Rule("executor", "asyncio/futures.py", "_call_set_state"),
    Rule("executor", "asyncio/futures.py", "_copy_future_state"),
    Rule("executor", "asyncio/futures.py", "_set_state"),
    Rule("executor", "asyncio/futures.py", "wrap_future"),
    # -- the HTTP server / framework
    Rule("framework", _site("uvicorn")),
    Rule("framework", _site("httptools")),
    Rule("framework", _site("h11")),
    Rule("framework", _site("starlette")),
    Rule("framework", _site("fastapi")),
    Rule("framework", _site("anyio")),
    Rule("framework", "/api/gateway/protocol.py"),
    Rule("framework", "hello_app.py"),  # the bare hello-world's ASGI callable
    # -- the event loop
    Rule("loop", "asyncio/"),
    Rule("loop", _site("uvloop")),
    Rule("loop", "/selectors.py"),
    # -- our own code on the hot path
    Rule("app", "/api/gateway/"),
    Rule("app", "/api/middleware.py"),
    Rule("app", "/runner/_app.py"),
    Rule("app", "/runner/_metrics.py"),
    Rule("app", "/registry/"),
    Rule("app", "/schema/"),
    Rule("app", "/core/"),
    Rule("app", _site("prometheus_client")),
    Rule("app", _site("structlog")),
    Rule("app", "/logging/"),
    Rule("app", "/uuid.py"),
    # the process's own entry frames: a sample whose leaf-most claimed frame is one of these ran in
    # native code below it (uvloop's run_forever): the loop
    Rule("loop", "/runpy.py"),
    Rule("loop", "/runner/__main__.py"),
    Rule("loop", "/api/gateway/__main__.py"),
)


def parse_frame(text: str) -> Frame:
    match = _FRAME.match(text)
    if match is None:
        return Frame(text, "")
    return Frame(match["function"], match["file"].replace("\\", "/"))


def parse_collapsed(lines: Iterable[str]) -> Iterator[tuple[list[Frame], int]]:
    """(stack root first, sample count) for each line of py-spy's raw (collapsed) output."""
    for line in lines:
        line = line.rstrip("\n")
        match = _LINE.match(line)
        if match is None or not match["stack"]:
            continue
        yield [parse_frame(f) for f in match["stack"].split(";")], int(match["count"])


def _deciding(stack: Sequence[Frame], rules: Sequence[Rule]) -> tuple[int, str]:
    """(depth, category) of the leaf-most frame a non-transparent rule claims; (-1, "other") if none."""
    for depth in range(len(stack) - 1, -1, -1):
        frame = stack[depth]
        rule = next((r for r in rules if r.claims(frame, stack[:depth])), None)
        if rule is not None and rule.category != TRANSPARENT:
            return depth, rule.category
    python = [d for d, f in enumerate(stack) if not f.native]
    return (python[-1] if python else -1), "other"


def categorize(stack: Sequence[Frame], rules: Sequence[Rule] = RULES) -> str:
    """The category of the leaf-most frame some rule claims ("other" when none does)."""
    return _deciding(stack, rules)[1]


@dataclass(frozen=True)
class Anatomy:
    samples: Counter[str]  # category -> samples
    leaves: dict[str, Counter[str]]  # category -> claimed leaf frame label -> samples

    @property
    def total(self) -> int:
        """Samples of running threads (the waiting categories left out)."""
        return sum(n for c, n in self.samples.items() if c not in WAITING)

    def share(self, category: str) -> float:
        """Share of the running samples (of all samples, for a waiting category)."""
        if category in WAITING:
            every = sum(self.samples.values())
            return self.samples[category] / every if every else 0.0
        return self.samples[category] / self.total if self.total else 0.0

    def top(self, category: str, n: int = 5) -> list[tuple[str, int]]:
        return self.leaves.get(category, Counter()).most_common(n)


def aggregate(stacks: Iterable[tuple[list[Frame], int]], rules: Sequence[Rule] = RULES) -> Anatomy:
    samples: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = {}
    for stack, count in stacks:
        depth, category = _deciding(stack, rules)
        samples[category] += count
        # The frame that decided (the leaf, for "other"): where to look next.
        decider = stack[depth] if depth >= 0 else stack[-1]
        leaves.setdefault(category, Counter())[_short(decider)] += count
    return Anatomy(samples, leaves)


def _short(frame: Frame) -> str:
    path = frame.file
    for marker in ("site-packages/", "python3.11/", "python3.12/", "python3.13/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        for root in ("api/", "runner/", "bench/", "/core/", "/schema/", "/registry/"):
            if f"/{root}" in path:
                path = root + path.split(f"/{root}", 1)[1]
                break
    return f"{frame.function} ({path})" if path else frame.function


def read(path: Path) -> Anatomy:
    with path.open(encoding="utf-8", errors="replace") as fh:
        return aggregate(parse_collapsed(fh))


def table(anatomies: dict[str, Anatomy], *, cpu_us_per_request: dict[str, float] | None = None) -> str:
    """A markdown table: one row per category, per column the share of samples (and, when the CPU
    time per request of that process is given, the µs per request it stands for)."""
    names = list(anatomies)
    head = "| category | " + " | ".join(names) + " |"
    lines = [head, "|---|" + "---:|" * len(names)]
    for category in CATEGORIES:
        if not any(a.samples[category] for a in anatomies.values()):
            continue
        cells = []
        for name in names:
            share = anatomies[name].share(category)
            cell = f"{share * 100:.1f}%"
            if cpu_us_per_request and name in cpu_us_per_request:
                cell += f" ({share * cpu_us_per_request[name]:,.0f} µs)"
            cells.append(cell)
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    for category in WAITING:
        cells = [f"{anatomies[n].share(category) * 100:.1f}% of all" for n in names]
        lines.append(f"| ({category}, not CPU) | " + " | ".join(cells) + " |")
    totals = [f"{anatomies[n].total:,} running samples" for n in names]
    if cpu_us_per_request:
        totals = [
            t + (f", {cpu_us_per_request[n]:,.0f} µs CPU/req" if n in cpu_us_per_request else "")
            for t, n in zip(totals, names, strict=True)
        ]
    lines.append("| total | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.anatomy", description=__doc__.split("\n")[0])
    parser.add_argument("raw", nargs="+", type=Path, help="py-spy --format raw output files")
    parser.add_argument("--top", type=int, default=4, help="frames to list per category")
    args = parser.parse_args(argv)
    anatomies = {path.stem: read(path) for path in args.raw}
    print(table(anatomies))
    for name, anatomy in anatomies.items():
        print(f"\n{name}: top frames per category")
        for category in CATEGORIES:
            for label, count in anatomy.top(category, args.top):
                print(f"  {category:<13} {count / anatomy.total * 100:5.1f}%  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
