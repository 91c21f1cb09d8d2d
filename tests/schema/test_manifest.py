"""schema.manifest: the CONTRACT.md example is valid, and every invalid manifest names its field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from schema.capabilities import Capability
from schema.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    endpoint_matches,
    parse_manifest,
    parse_manifest_bytes,
)

# The manifest of CONTRACT.md, section "manifest.json", without its comments.
CONTRACT_EXAMPLE: dict[str, Any] = {
    "name": "com.acme.hello",
    "publisher": "acme",
    "version": "1.0.0",
    "runtime": "wasm-component@1",
    "capabilities": [
        "cap:log.emit",
        "cap:storage.kv",
        "cap:http.fetch",
        "cap:secrets.get",
        "cap:ui.proxy",
        "cap:user.read",
        "cap:context.read",
        "cap:debug.logs",
    ],
    "api": {"endpoints": [{"method": "GET", "path": "/status"}, {"method": "POST", "path": "/items/:id"}]},
    "ui": {"type": "iframe", "entry": "ui/index.html"},
    "egress": ["api.example.com", "*.example.org"],
    "limits": {"timeout_ms": 5000, "memory_mb": 64},
    "config_schema": {"type": "object", "properties": {}},
}

MINIMAL: dict[str, Any] = {
    "name": "com.acme.min",
    "publisher": "acme",
    "version": "0.1.0",
    "runtime": "wasm-component@1",
}


def test_contract_example_is_valid() -> None:
    manifest = parse_manifest(CONTRACT_EXAMPLE)
    assert manifest.name == "com.acme.hello"
    assert manifest.publisher == "acme"
    assert Capability.UI_PROXY in manifest.capabilities
    assert manifest.api is not None and manifest.api.endpoints[1].path == "/items/:id"
    assert manifest.ui is not None and manifest.ui.entry == "ui/index.html"
    assert manifest.limits.timeout_ms == 5000


def test_contract_example_round_trips_through_json_bytes() -> None:
    manifest = parse_manifest_bytes(json.dumps(CONTRACT_EXAMPLE).encode())
    again = parse_manifest(manifest.model_dump(mode="json", exclude_none=True))
    assert again == manifest


def test_minimal_manifest_gets_defaults() -> None:
    manifest = parse_manifest(MINIMAL)
    assert manifest.capabilities == []
    assert manifest.api is None and manifest.ui is None
    assert (manifest.limits.timeout_ms, manifest.limits.memory_mb) == (5000, 64)


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        del doc[key]

    return mutate


# (id, mutation of the contract example, expected field path, a fragment of the message)
INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("unknown-top-level", _set(("homepage",), "https://x"), "homepage", "unknown field"),
    ("missing-name", _drop("name"), "name", "is required"),
    ("name-one-segment", _set(("name",), "hello"), "name", "reverse-domain"),
    ("name-uppercase", _set(("name",), "Com.Acme.Hello"), "name", "lowercase"),
    ("name-not-string", _set(("name",), 42), "name", "valid string"),
    ("publisher-bad-chars", _set(("publisher",), "Acme Inc!"), "publisher", "slug"),
    ("missing-publisher", _drop("publisher"), "publisher", "is required"),
    ("version-not-semver", _set(("version",), "1.0"), "version", "semantic version"),
    ("version-leading-v", _set(("version",), "v1.0.0"), "version", "semantic version"),
    ("runtime-unknown", _set(("runtime",), "wasm-core@1"), "runtime", "wasm-component@1"),
    ("capability-unknown", _set(("capabilities", 1), "cap:fs.write"), "capabilities[1]", "cap:fs.write"),
    ("capability-twice", _set(("capabilities",), ["cap:log.emit", "cap:log.emit"]), "capabilities", "twice"),
    ("capabilities-not-list", _set(("capabilities",), "cap:log.emit"), "capabilities", "valid list"),
    ("endpoint-path-relative", _set(("api", "endpoints", 0, "path"), "status"), "api.endpoints[0].path", "/"),
    ("endpoint-path-dotdot", _set(("api", "endpoints", 1, "path"), "/a/../b"), "api.endpoints[1].path", ".."),
    (
        "endpoint-path-space",
        _set(("api", "endpoints", 0, "path"), "/a b"),
        "api.endpoints[0].path",
        "whitespace",
    ),
    (
        "endpoint-param-twice",
        _set(("api", "endpoints", 1, "path"), "/a/:id/:id"),
        "api.endpoints[1].path",
        "param",
    ),
    ("endpoint-method", _set(("api", "endpoints", 0, "method"), "TRACE"), "api.endpoints[0].method", "GET"),
    (
        "endpoint-unknown-field",
        _set(("api", "endpoints", 0, "auth"), "none"),
        "api.endpoints[0].auth",
        "unknown",
    ),
    (
        "endpoint-duplicate",
        _set(("api", "endpoints"), [{"method": "GET", "path": "/a"}, {"method": "GET", "path": "/a"}]),
        "api.endpoints",
        "duplicate endpoint GET /a",
    ),
    ("endpoints-empty", _set(("api", "endpoints"), []), "api.endpoints", "at least 1"),
    ("ui-entry-absolute", _set(("ui", "entry"), "/ui/index.html"), "ui.entry", "relative"),
    ("ui-entry-dotdot", _set(("ui", "entry"), "ui/../manifest.json"), "ui.entry", ".."),
    ("ui-entry-backslash", _set(("ui", "entry"), "ui\\index.html"), "ui.entry", "relative"),
    ("ui-entry-hidden", _set(("ui", "entry"), "ui/.env"), "ui.entry", "hidden"),
    ("ui-entry-outside-ui", _set(("ui", "entry"), "dist/index.html"), "ui.entry", "under ui/"),
    ("ui-entry-drive-letter", _set(("ui", "entry"), "C:/ui/index.html"), "ui.entry", "relative"),
    ("ui-type", _set(("ui", "type"), "popup"), "ui.type", "iframe"),
    ("ui-missing-with-ui-proxy", _drop("ui"), "ui", "cap:ui.proxy"),
    ("egress-with-scheme", _set(("egress", 0), "https://api.example.com"), "egress[0]", "without scheme"),
    ("egress-with-port", _set(("egress", 1), "api.example.org:443"), "egress[1]", "port"),
    ("egress-ipv4-literal", _set(("egress", 0), "169.254.169.254"), "egress[0]", "not an IP address"),
    ("egress-ipv4-wildcard", _set(("egress", 0), "*.10.0.0.1"), "egress[0]", "not an IP address"),
    ("egress-ipv6-literal", _set(("egress", 0), "[::1]"), "egress[0]", "not an IP address"),
    ("egress-twice", _set(("egress",), ["a.example.com", "a.example.com"]), "egress", "twice"),
    (
        "egress-without-http-cap",
        _set(("capabilities",), ["cap:log.emit", "cap:ui.proxy"]),
        "egress",
        "cap:http.fetch",
    ),
    ("timeout-zero", _set(("limits", "timeout_ms"), 0), "limits.timeout_ms", "greater than or equal to 1"),
    ("timeout-too-big", _set(("limits", "timeout_ms"), 10**9), "limits.timeout_ms", "less than or equal"),
    ("timeout-as-string", _set(("limits", "timeout_ms"), "5000"), "limits.timeout_ms", "valid integer"),
    ("timeout-as-bool", _set(("limits", "timeout_ms"), True), "limits.timeout_ms", "valid integer"),
    ("memory-negative", _set(("limits", "memory_mb"), -1), "limits.memory_mb", "greater than or equal to 1"),
    ("limits-unknown-field", _set(("limits", "cpu_ms"), 10), "limits.cpu_ms", "unknown field"),
    ("config-schema-not-object", _set(("config_schema",), {"type": "string"}), "config_schema", "object"),
    ("config-schema-invalid", _set(("config_schema",), {"type": 5}), "config_schema", "valid JSON Schema"),
]


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_manifest_names_the_field(
    mutate: Callable[[dict[str, Any]], None], path: str, fragment: str
) -> None:
    doc = copy.deepcopy(CONTRACT_EXAMPLE)
    mutate(doc)
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    assert info.value.code == "invalid_manifest"
    assert [issue.path for issue in info.value.issues] == [path]
    assert fragment in info.value.issues[0].message
    assert path in str(info.value)


def test_there_are_at_least_25_invalid_cases() -> None:
    assert len(INVALID) >= 25
    assert len({case[0] for case in INVALID}) == len(INVALID)


def test_several_problems_are_all_reported() -> None:
    doc = copy.deepcopy(CONTRACT_EXAMPLE)
    doc["version"] = "x"
    doc["limits"]["memory_mb"] = 0
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    assert sorted(issue.path for issue in info.value.issues) == ["limits.memory_mb", "version"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{", "not valid UTF-8 JSON"),
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b"[]", "JSON object"),
        (b'{"name": "com.acme.a", "name": "com.acme.b"}', "repeats the key 'name'"),
        (b'{"limits": {"timeout_ms": NaN}}', "NaN"),
        (b"[" * 100_000, "nested too deeply"),
        (b" " * (MAX_MANIFEST_BYTES + 1), f"larger than {MAX_MANIFEST_BYTES}"),
    ],
    ids=["truncated", "not-utf8", "array", "duplicate-key", "nan", "deep-nesting", "too-large"],
)
def test_invalid_manifest_bytes(raw: bytes, fragment: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest_bytes(raw)
    assert [issue.path for issue in info.value.issues] == [""]
    assert fragment in info.value.issues[0].message


def test_manifest_model_is_frozen() -> None:
    manifest = parse_manifest(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        manifest.name = "com.other.name"  # type: ignore[misc]
    assert isinstance(manifest, Manifest)


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/status", "/status", {}),
        ("/status", "/status/", {}),
        ("/status", "/other", None),
        ("/items/:id", "/items/42", {"id": "42"}),
        ("/items/:id", "/items", None),
        ("/items/:id", "/items/42/extra", None),
        ("/items/:id", "/items//", None),
        ("/a/:x/b/:y", "/a/1/b/2", {"x": "1", "y": "2"}),
        ("/a/:x/b/:y", "/a/1/c/2", None),
        ("/", "/", {}),
        ("/", "/x", None),
        ("/Status", "/status", None),
    ],
)
def test_endpoint_matches(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert endpoint_matches(template, path) == expected
