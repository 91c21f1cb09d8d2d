"""Service-free units: trap classification, egress policy, engine fingerprint, the wasmtime adapter."""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

import httpx
import pytest
import wasmtime

from bundles.blobstore import artifact_key
from runner._egress import EgressPolicy, address_refusal, host_matches
from runner._traps import classify
from runner.compile import engine_fingerprint, new_engine, precompile
from runner.errors import DeadlineExceeded, FuelExhausted, GuestTrap, MemoryExhausted, ModuleRejected
from tests.runner.runner_helpers import FIXTURES


@pytest.mark.parametrize(
    ("message", "output", "cls", "code"),
    [
        (
            "error while executing\n\nCaused by:\n    wasm trap: all fuel consumed by WebAssembly",
            "",
            FuelExhausted,
            "out_of_fuel",
        ),
        ("error\nCaused by:\n    wasm trap: interrupt", "", DeadlineExceeded, "interrupt"),
        ("error\nCaused by:\n    wasm trap: call stack exhausted", "", GuestTrap, "stack_overflow"),
        (
            "error\nCaused by:\n    wasm trap: wasm `unreachable` instruction executed",
            "",
            GuestTrap,
            "unreachable",
        ),
        (
            "error\nCaused by:\n    wasm trap: wasm `unreachable` instruction executed",
            "MemoryError",
            MemoryExhausted,
            "unreachable",
        ),
        ("memory minimum size of 199 pages exceeds memory limits", "", MemoryExhausted, None),
        ("something nobody has seen", "", GuestTrap, None),
    ],
)
def test_classify(message: str, output: str, cls: type, code: str | None) -> None:
    err = classify(wasmtime.WasmtimeError(message), guest_output=output)
    assert type(err) is cls
    assert err.trap_code == code  # type: ignore[attr-defined]


def test_classify_host_exception_is_never_unclassified() -> None:
    err = classify(KeyError("x"))
    assert isinstance(err, GuestTrap) and err.trap_code == "host_error"


@pytest.mark.parametrize(
    ("host", "pattern", "expected"),
    [
        ("api.x.com", "api.x.com", True),
        ("evil-api.x.com", "api.x.com", False),
        ("a.x.com", "*.x.com", True),
        ("a.b.x.com", "*.x.com", True),
        ("x.com", "*.x.com", False),
        ("evilx.com", "*.x.com", False),
        ("anything.org", "*", True),
    ],
)
def test_host_matching(host: str, pattern: str, expected: bool) -> None:
    assert host_matches(host, pattern) is expected


def _policy(**kw: object) -> EgressPolicy:
    base: dict[str, object] = {
        "operator_allow": ("*",),
        "allow_http": False,
        "allow_private": False,
        "allow_cidrs": (),
        "resolve": {},
        "timeout_s": 1.0,
        "max_response_bytes": 1,
        "max_redirects": 0,
    }
    base.update(kw)
    return EgressPolicy(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ip",
    ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.1.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "fc00::1"],
)
def test_non_public_addresses_are_refused(ip: str) -> None:
    assert address_refusal(ipaddress.ip_address(ip), _policy()) is not None


def test_public_address_allowed_and_metadata_never() -> None:
    assert address_refusal(ipaddress.ip_address("93.184.216.34"), _policy()) is None
    wide_open = _policy(allow_private=True, allow_cidrs=(ipaddress.ip_network("169.254.0.0/16"),))
    assert address_refusal(ipaddress.ip_address("169.254.169.254"), wide_open) == "a cloud metadata address"
    cidr = _policy(allow_cidrs=(ipaddress.ip_network("127.0.0.2/32"),))
    assert address_refusal(ipaddress.ip_address("127.0.0.2"), cidr) is None
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), cidr) is not None


def test_fingerprint_is_a_valid_artifact_key_and_precompile_roundtrips() -> None:
    fp = engine_fingerprint()
    assert fp == engine_fingerprint() and fp.startswith("wasmtime-50.0.1-")
    artifact_key("sha256:" + "a" * 64, fp)  # raises if not blob-key safe
    artifact = precompile((FIXTURES / "echo.wasm").read_bytes())
    wasmtime.component.Component.deserialize(new_engine(), artifact)
    with pytest.raises(wasmtime.WasmtimeError):  # a different Config cannot load it
        wasmtime.component.Component.deserialize(wasmtime.Engine(), artifact)


def test_precompile_rejects_non_components() -> None:
    with pytest.raises(ModuleRejected):
        precompile(b"\0asm\x01\0\0\0")


def test_adapter_lowering_is_thread_safe_and_explicit() -> None:
    """Lower `result<_, log-error>` style values from many threads (upstream raced on a global set)."""
    from runner import _adapter
    from runner._adapter import err, ok

    _adapter.install()
    component = wasmtime.component.Component(new_engine(), (FIXTURES / "hostile.wasm").read_bytes())
    log_iface: Any = component.type.imports(new_engine())["extplane:extension/log@1.0.0"].ty
    result_ty: Any = log_iface.exports(new_engine())["emit"].ty.result
    failures: list[BaseException] = []

    def lower_many() -> None:
        try:
            for _ in range(300):
                assert result_ty._lower(None, ok()) == ("ok", None)
                name, raw = result_ty._lower(None, err("rate-limited"))
                assert name == "err" and raw is not None
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=lower_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def _cache_with(n: int, *, max_bytes: int) -> tuple[Any, list[str], list[float]]:
    from bundles.blobstore import InMemoryBlobStore, bundle_key
    from bundles.hashing import content_hash
    from runner._loader import ComponentCache
    from tests.runner.runner_helpers import _bundle_bytes

    store = InMemoryBlobStore()
    hashes = []
    for i in range(n):
        data = _bundle_bytes((FIXTURES / "echo.wasm").read_bytes(), f"com.test.lru{i}")
        hashes.append(content_hash(data))
        store.put(bundle_key(hashes[-1]), data)
    loads: list[float] = []
    cache = ComponentCache(
        new_engine(), store, max_bytes=max_bytes, on_load=lambda _pre, size: loads.append(size)
    )
    return cache, hashes, loads


def test_concurrent_first_requests_load_once() -> None:
    cache, [chash], loads = _cache_with(1, max_bytes=1 << 30)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(chash))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len(results) == 6
    assert all(r is results[0] for r in results)


def test_lru_is_bounded_by_bytes() -> None:
    cache, hashes, loads = _cache_with(3, max_bytes=1)  # every entry is over budget: keep only the newest
    for chash in hashes:
        cache.get(chash)
    assert cache.stats().entries == 1
    cache.get(hashes[-1])  # still cached
    cache.get(hashes[0])  # evicted earlier: loads again
    assert len(loads) == 4
    assert cache.stats().hits == 1


def test_a_hung_dns_lookup_costs_the_fetch_its_budget_not_more() -> None:
    """getaddrinfo cannot be interrupted: the fetch stops waiting for it when its time is up, while the
    lookup is still hanging (no wall-clock bound here: the resolver is provably still blocked)."""
    import threading

    from runner._egress import EgressClient, EgressError

    release, started = threading.Event(), threading.Event()

    def hung_resolver(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        started.set()
        release.wait(60)
        raise OSError("released")

    client = EgressClient(_policy(operator_allow=("*.example.com",)), resolver=hung_resolver)
    try:
        with pytest.raises(EgressError) as info:
            client.fetch(
                egress=["slow.example.com"],
                method="GET",
                url="https://slow.example.com/",
                headers=[],
                body=b"",
                timeout_s=0.2,
            )
        assert info.value.case == "timeout" and "resolving slow.example.com" in info.value.message
        assert started.is_set() and not release.is_set()  # gave up while the lookup still hung
    finally:
        release.set()
        client.close()


def test_resolver_failures_are_transport_errors() -> None:
    import socket

    from runner._egress import EgressClient, EgressError

    def failing(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    client = EgressClient(_policy(operator_allow=("*.example.com",)), resolver=failing)
    try:
        with pytest.raises(EgressError) as info:
            client._check(httpx.URL("https://nope.example.com/"), ["nope.example.com"])
        assert info.value.case == "transport" and "cannot resolve nope.example.com" in info.value.message
    finally:
        client.close()


def test_egress_checks_before_any_connection() -> None:
    from runner._egress import EgressClient, EgressError

    client = EgressClient(
        _policy(
            operator_allow=("*.example.com",),
            resolve={"api.example.com": "93.184.216.34", "internal.example.com": "10.0.0.5"},
        )
    )
    egress = ["api.example.com", "internal.example.com", "other.org"]

    def refused(url: str) -> str:
        with pytest.raises(EgressError) as info:
            client._check(httpx.URL(url), egress)
        return f"{info.value.case}: {info.value.message}"

    try:
        assert client._check(httpx.URL("https://api.example.com/x"), egress)[0] == "api.example.com"
        assert refused("http://api.example.com/x").startswith("not-allowed: plain http")
        assert "egress list" in refused("https://evil.example.com/")
        assert "operator policy" in refused("https://other.org/")
        assert "private" in refused("https://internal.example.com/")
        assert refused("file:///etc/passwd").startswith("invalid-url")
    finally:
        client.close()


def test_runner_settings_refuse_dev_shortcuts_outside_dev() -> None:
    from pydantic import ValidationError

    from core.settings import RunnerSettings

    strong = "r" * 32
    with pytest.raises(ValidationError, match="EXT_RUNNER_AUTH is missing or a placeholder"):
        RunnerSettings(env="prod")
    with pytest.raises(ValidationError, match="https"):
        RunnerSettings(env="prod", runner_auth=strong, egress_allow_http=True)
    assert RunnerSettings(env="prod", runner_auth=strong).egress_allow == []  # deny by default
    assert RunnerSettings(env="test", egress_allow_http=True).egress_allow_http
