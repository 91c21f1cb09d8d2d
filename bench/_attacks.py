"""The attacks of `bench.hostile`, one coroutine each: what issue 11's red-team run did to a stack.

Each returns `(contained, detail)`: contained means the stack answered the way docs/security.md says
it must (the attacker gets a clear refusal or its own call is cut), whatever the victim saw; the
victim's side is measured by the caller's `Probe` around the attack.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from temporalio.client import Client

from bench._hostile_stack import (
    ATTACK_MEMORY_MB,
    ATTACK_TIMEOUT_MS,
    ATTACKER,
    ATTACKER_EXT,
    HEADERS_EXT,
    MEMORY_EXT,
    VICTIM,
    VICTIM_EXT,
    Hostile,
)
from schema.payloads.tokens import CREATE_TOKEN_WORKFLOW
from schema.temporal import CONTROL_TASK_QUEUE

Attack = Callable[[Hostile], Awaitable[tuple[bool, str]]]


def _addr(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def _raw_status(url: str, head: bytes, *, timeout: float = 30.0) -> tuple[int | None, float]:
    """Send `head` on a fresh socket while reading the answer, as a browser or curl does (a server
    may answer before the upload ends); (status or None when the server just closed, seconds)."""
    host, port = _addr(url)
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)

    async def upload() -> None:
        try:
            writer.write(head)
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the server refused the rest: its answer is what counts

    sending = asyncio.create_task(upload())
    try:
        async with asyncio.timeout(timeout):
            try:
                line = await reader.readline()
            except (ConnectionError, OSError):
                line = b""
    except TimeoutError:
        return None, time.perf_counter() - t0
    finally:
        sending.cancel()
        writer.transport.abort()
    parts = line.split(b" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return status, time.perf_counter() - t0


async def header_bomb(h: Hostile) -> tuple[bool, str]:
    """Item 15: 64 MiB request headers without a token, eight in a row."""
    head = b"GET /api/ext/com.x.y/z HTTP/1.1\r\nhost: gw\r\nx-big: " + b"a" * (64 << 20) + b"\r\n\r\n"
    answers = [await _raw_status(h.gateway, head) for _ in range(8)]
    statuses = Counter(str(status) for status, _ in answers)
    slowest = max(seconds for _, seconds in answers)
    return set(statuses) == {"431"}, f"answers {dict(statuses)}, the slowest after {slowest:.2f} s"


async def _token_checks(h: Hostile) -> Counter[str]:
    """The gateway's `gateway_token_checks_total` by result (empty before issue 11 added it)."""
    async with httpx.AsyncClient(base_url=h.gateway, timeout=10.0) as client:
        text = (await client.get("/metrics")).text
    found: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith('gateway_token_checks_total{result="'):
            result = line.split('"', 2)[1]
            found[result] += int(float(line.rsplit(" ", 1)[1]))
    return found


async def token_flood(h: Hostile) -> tuple[bool, str]:
    """Item 16: random bearer tokens, half malformed, half well-formed and unknown."""
    statuses: Counter[int] = Counter()
    n = 2000
    before = await _token_checks(h)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        token = "ext_" + secrets.token_urlsafe(32) if i % 2 else secrets.token_hex(200)
        resp = await client.get(f"/api/ext/{VICTIM_EXT}/hello", headers={"authorization": f"Bearer {token}"})
        statuses[resp.status_code] += 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=h.gateway, timeout=30.0) as client:
        for start in range(0, n, 32):
            await asyncio.gather(*(one(client, i) for i in range(start, min(n, start + 32))))
    seconds = time.perf_counter() - t0
    checks = await _token_checks(h)
    checks.subtract(before)
    # A malformed token costs no lookup; a new well-formed one at most one (or none, once the
    # gateway's lookup budget is spent: 503). The victim's own token is cached.
    refused = statuses.get(401, 0) + statuses.get(503, 0) == n
    # (+5: the victim's cached token expires and is looked up again every EXT_GATEWAY_TOKEN_TTL_S.)
    ok = refused and checks["lookup"] <= n // 2 + 5 and checks["malformed"] >= n // 2
    return (
        ok,
        f"{dict(statuses)} in {seconds:.1f} s; token checks {dict(checks)}",
    )


async def spin_flood(h: Hostile) -> tuple[bool, str]:
    """Item 13: 90 concurrent spinning guests of one tenant, twice over."""
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()

    async def one(client: httpx.AsyncClient) -> None:
        try:
            resp = await client.get(f"/api/ext/{ATTACKER_EXT}/loop")
            statuses[str(resp.status_code)] += 1
            if resp.status_code == 502:
                reasons[resp.json().get("message", "")] += 1
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=h.gateway,
        headers={"authorization": f"Bearer {h.attacker_token}"},
        timeout=60.0,
        limits=limits,
    ) as client:
        for _ in range(2):
            await asyncio.gather(*(one(client) for _ in range(90)))
    drained = await _runner_idle(h, within_s=ATTACK_TIMEOUT_MS / 1000 + 2.0)
    ok = set(statuses) <= {"503", "504"} and drained
    why = f" (502: {dict(reasons)})" if reasons else ""
    return ok, f"attacker got {dict(statuses)}{why}; runner idle after the flood: {drained}"


async def _runner_idle(h: Hostile, *, within_s: float) -> bool:
    runner = h.fs.env["EXT_RUNNER_URL"].split(",")[0]
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(base_url=runner, timeout=5.0) as client:
        while time.monotonic() < deadline:
            resp = await client.get("/healthz")
            if resp.status_code == 200 and resp.json().get("admitted", 1) == 0:
                return True
            await asyncio.sleep(0.05)
    return False


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _calls_with_rss(
    h: Hostile, path: str, *, concurrency: int, rounds: int
) -> tuple[Counter[str], float]:
    """`rounds` x `concurrency` attacker calls of `path`; (statuses, peak runner RSS growth MiB)."""
    pid = int(h.fs.service("runner")["pid"])
    base = peak = _rss_mib(pid)
    statuses: Counter[str] = Counter()
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_mib(pid))
            await asyncio.sleep(0.01)

    async def one(client: httpx.AsyncClient) -> None:
        resp = await client.get(path)
        code = resp.json().get("error", "") if resp.status_code >= 400 else ""
        statuses[f"{resp.status_code} {code}".strip()] += 1

    sampler = asyncio.create_task(sample())
    async with h.tenant_client(h.attacker_token, timeout=60.0) as client:
        for _ in range(rounds):
            await asyncio.gather(*(one(client) for _ in range(concurrency)))
    done.set()
    await sampler
    return statuses, peak - base


async def memory_bomb(h: Hostile) -> tuple[bool, str]:
    """Item 11: a component with 17 linear memories under a 32 MiB cap, 4 calls at a time."""
    statuses, grew = await _calls_with_rss(h, f"/api/ext/{MEMORY_EXT}/x", concurrency=4, rounds=3)
    # The cap is per store: 4 stores at once may hold 4 x 32 MiB, never 17 x that each.
    ok = not any(s.startswith("200") for s in statuses) and grew <= 4 * ATTACK_MEMORY_MB + 64
    return ok, f"attacker got {dict(statuses)}; runner RSS peak +{grew:.0f} MiB"


async def header_lift_bomb(h: Hostile) -> tuple[bool, str]:
    """Item 12: 64 response headers aliasing one 1 MiB buffer (64 MiB to lift), 4 calls at a time."""
    statuses, grew = await _calls_with_rss(h, f"/api/ext/{HEADERS_EXT}/x?a", concurrency=4, rounds=3)
    # What is left is transient and inside wasmtime's C API (it lifts the whole result before the
    # host sees it, up to its 128 MiB hostcall limit): at most that per concurrent call.
    ok = not any(s.startswith("200") for s in statuses) and grew <= 4 * 128
    return ok, f"attacker got {dict(statuses)}; runner RSS peak +{grew:.0f} MiB"


async def deadline(h: Hostile) -> tuple[bool, str]:
    """Item 14: a spinning guest with a 1 s deadline; the answer must come within 1.1 s."""
    late: list[float] = []
    statuses: Counter[int] = Counter()
    async with h.tenant_client(h.attacker_token, timeout=30.0) as client:
        for _ in range(10):
            t0 = time.perf_counter()
            resp = await client.get(f"/api/ext/{ATTACKER_EXT}/loop")
            late.append((time.perf_counter() - t0) * 1e3 - ATTACK_TIMEOUT_MS)
            statuses[resp.status_code] += 1
    late.sort()
    ok = late[-1] <= 100.0 and set(statuses) == {504}
    return ok, f"{dict(statuses)}; answer - deadline ms: p50 {late[5]:.0f}, max {late[-1]:.0f}"


async def traversal(h: Hostile) -> tuple[bool, str]:
    """Item 7: `..` out of an extension UI path to the runner's /metrics and /healthz."""
    base = f"/ext-ui/{ATTACKER_EXT}/{h.attacker_hash}"
    variants = [
        f"{base}/../../../metrics",
        f"{base}/%2e%2e/%2e%2e/%2e%2e/metrics",
        f"{base}/%2E%2E/%2E%2E/%2E%2E/healthz",
        f"{base}/..%2f..%2f..%2fmetrics",
        f"{base}/%252e%252e/%252e%252e/%252e%252e/metrics",
        f"{base}/..\\..\\..\\metrics",
    ]
    leaked = []
    for path in variants:
        head = f"GET {path} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {h.attacker_token}\r\n\r\n".encode()
        host, port = _addr(h.gateway)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head)
        data = b""
        try:
            async with asyncio.timeout(10):
                while b"\r\n\r\n" not in data or len(data) < 4096:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    data += chunk
        except TimeoutError:
            pass
        writer.close()
        if b" 200 " in data.split(b"\r\n", 1)[0] and (b"runner_" in data or b"admitted" in data):
            leaked.append(path)
    return not leaked, f"{len(leaked)}/{len(variants)} variants reached the runner's own routes"


async def unencrypted_payload(h: Hostile) -> tuple[bool, str]:
    """Item 4: a Temporal client without the codec starts CreateToken with the admin scope."""
    token = "ext_" + secrets.token_urlsafe(32)
    client = await Client.connect(h.fs.env["EXT_TEMPORAL_ADDRESS"])
    await client.start_workflow(
        CREATE_TOKEN_WORKFLOW,
        {
            "token_id": str(uuid.uuid4()),
            "token_hash": hashlib.sha256(token.encode()).hexdigest(),
            "scopes": ["admin"],
            "tenant_id": None,
            "name": "forged",
            "actor": "attacker",
        },
        id=f"forged-{uuid.uuid4().hex}",
        task_queue=CONTROL_TASK_QUEUE,
        execution_timeout=timedelta(seconds=30),
    )
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient(base_url=h.fs.env["EXT_API_URL"], timeout=10) as api:
        while time.monotonic() < deadline:
            resp = await api.get("/v1/installs", headers={"authorization": f"Bearer {token}"})
            if resp.status_code == 200:
                return False, "the forged admin token works"
            await asyncio.sleep(0.5)
    return True, "the forged token never became valid (10 s)"


async def idempotency_reuse(h: Hostile) -> tuple[bool, str]:
    """Item 17: one Idempotency-Key, two different config changes."""
    key = f"bench-{uuid.uuid4().hex}"
    path = f"/v1/tenants/{VICTIM}/installs/{VICTIM_EXT}/config"
    async with h.fs.api() as api:
        first = await api.put(path, json={"config": {"a": "1"}}, headers={"idempotency-key": key})
        second = await api.put(path, json={"config": {"a": "2"}}, headers={"idempotency-key": key})
    return (
        second.status_code == 422,
        f"first {first.status_code}, reused key with another body {second.status_code}",
    )


async def unknown_install(h: Hostile) -> tuple[bool, str]:
    """Item 18: installs of unpublished or malformed names, config of a missing install."""
    names = [f"com.nosuch.x{uuid.uuid4().hex[:6]}", "Not A Name", f"com.nosuch.y{uuid.uuid4().hex[:6]}"]
    codes = []
    async with h.fs.api() as api:
        for name in names:
            r = await api.post(
                f"/v1/tenants/{ATTACKER}/installs", json={"extension": name, "version": "1.0.0"}
            )
            codes.append(r.status_code)
        r = await api.put(f"/v1/tenants/{ATTACKER}/installs/{names[2]}/config", json={"config": {"a": "b"}})
        codes.append(r.status_code)
    client = await h.fs.temporal()
    running = 0
    async for _ in client.list_workflows(
        f"WorkflowId STARTS_WITH 'install/{ATTACKER}/com.nosuch' AND ExecutionStatus = 'Running'"
    ):
        running += 1
    return running == 0 and all(
        400 <= c < 500 for c in codes
    ), f"answers {codes}; {running} install workflows left running"


async def nul_query(h: Hostile) -> tuple[bool, str]:
    """Item 19: NUL in query parameters of the operator API's read routes."""
    paths = [
        "/v1/audit?tenant=a%00b",
        "/v1/audit?extension=a%00b",
        f"/v1/tenants/{VICTIM}/executions?extension=a%00b",
        "/v1/installs?tenant=a%00b",
        "/v1/debug-sessions?tenant=a%00b",
        "/v1/debug-sessions?extension=a%00b",
        "/v1/extensions/a%00b/versions",
        "/v1/extensions/a%00b/versions/1.0.0",
        f"/v1/tenants/{VICTIM}/installs/a%00b",
    ]
    codes = {}
    async with h.fs.api() as api:
        for p in paths:
            codes[p] = (await api.get(p)).status_code
    bad = {p: c for p, c in codes.items() if c >= 500}
    return not bad, f"{len(bad)}/{len(paths)} routes answered 5xx {sorted(set(bad.values()))}"


async def debug_after_revoke(h: Hostile) -> tuple[bool, str]:
    """Item 10: a debug stream whose token is revoked (`POST /v1/tokens/{id}/revoke`) must end."""
    async with h.fs.api() as api:
        resp = await api.post(
            "/v1/tokens", json={"tenant_id": ATTACKER, "scopes": ["ext:debug"], "name": "dbg"}
        )
        resp.raise_for_status()
        token, token_id = resp.json()["token"], resp.json()["token_id"]
    t_revoke = 0.0
    ended_after: float | None = None
    async with (
        h.fs.api() as api,
        httpx.AsyncClient(base_url=h.gateway, timeout=httpx.Timeout(10.0, read=60.0)) as client,
    ):
        async with client.stream(
            "GET",
            "/api/ext-debug/stream",
            params={"extension": ATTACKER_EXT},
            headers={"authorization": f"Bearer {token}"},
        ) as stream:
            if stream.status_code != 200:
                return False, f"stream did not open: {stream.status_code}"
            (await api.post(f"/v1/tokens/{token_id}/revoke")).raise_for_status()
            t_revoke = time.perf_counter()
            try:
                async with asyncio.timeout(45):
                    async for _ in stream.aiter_lines():
                        pass
                ended_after = time.perf_counter() - t_revoke
            except TimeoutError:
                ended_after = None
    if ended_after is None:
        return False, "the stream still ran 45 s after its token was revoked"
    return ended_after <= 30.0, f"stream ended {ended_after:.1f} s after the revocation"


async def leak_scan(h: Hostile) -> tuple[bool, str]:
    """Items 1-2: a secret set (and one refused), then every log of the stack grepped for it,
    for the tokens and for the master keys."""
    value = "s3cr3t-" + secrets.token_hex(12)
    async with h.fs.api() as api:
        await api.put(
            f"/v1/tenants/{VICTIM}/installs/{VICTIM_EXT}/secrets", json={"secrets": {"api_key": value}}
        )
        await api.put(
            f"/v1/tenants/{VICTIM}/installs/{VICTIM_EXT}/secrets", json={"secrets": {"bad\u0000name": value}}
        )
        await api.put(
            f"/v1/tenants/{VICTIM}/installs/{VICTIM_EXT}/config", json={"config": {"x": value + "\u0000"}}
        )
    needles = {
        "secret": value,
        "admin token": h.fs.env["EXT_ADMIN_TOKEN"],
        "victim token": h.victim_token,
        "attacker token": h.attacker_token,
    }
    for part in h.fs.state()["secrets"]["master_keys"].split(","):
        needles[f"master key {part.split(':')[0]}"] = part.split(":", 1)[-1]
    found: list[str] = []
    for path in sorted((h.fs.root / "logs").glob("*.log")):
        text = path.read_text(errors="replace")
        found += [f"{what} in {path.name}" for what, needle in needles.items() if needle and needle in text]
    return not found, "; ".join(
        found
    ) if found else f"no secret, token or key in {len(needles)} needles x logs"


ATTACKS: list[tuple[str, str, Attack]] = [
    ("header_bomb", "15", header_bomb),
    ("token_flood", "16", token_flood),
    ("spin_flood", "13", spin_flood),
    ("deadline", "14", deadline),
    ("memory_bomb", "11", memory_bomb),
    ("header_lift_bomb", "12", header_lift_bomb),
    ("traversal", "7", traversal),
    ("unencrypted_payload", "4", unencrypted_payload),
    ("idempotency_reuse", "17", idempotency_reuse),
    ("unknown_install", "18", unknown_install),
    ("nul_query", "19", nul_query),
    ("debug_after_revoke", "10", debug_after_revoke),
    ("leak_scan", "1,2", leak_scan),
]
