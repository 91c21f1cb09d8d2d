"""Fuzzing schema.manifest: whatever the input, parsing either returns a Manifest or raises
ManifestError with at least one issue (never a bare ValidationError, RecursionError, ValueError...).

Inputs: random dicts mixing valid field values with garbage, mutations of a complete valid manifest,
arbitrary bytes, and byte-level mutations of valid manifest JSON.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema.capabilities import ALL_CAPABILITIES
from schema.manifest import (
    EGRESS_RE,
    METHODS,
    NAME_RE,
    PUBLISHER_RE,
    Manifest,
    ManifestError,
    parse_manifest,
    parse_manifest_bytes,
)
from tests.fuzz.fuzz_helpers import FUZZ, JSON_VALUES, STRICT_JSON, scaled

VALID: dict[str, Any] = {
    "name": "com.acme.hello",
    "publisher": "acme",
    "version": "1.0.0",
    "runtime": "wasm-component@1",
    "capabilities": ["cap:log.emit", "cap:http.fetch", "cap:ui.proxy", "cap:storage.kv"],
    "api": {"endpoints": [{"method": "GET", "path": "/status"}, {"method": "POST", "path": "/items/:id"}]},
    "ui": {"type": "iframe", "entry": "ui/index.html"},
    "egress": ["api.example.com", "*.example.org"],
    "limits": {"timeout_ms": 5000, "memory_mb": 64},
    "config_schema": {"type": "object", "properties": {"greeting": {"type": "string"}}},
}


def check(data: Any) -> Manifest | None:
    """The property: a Manifest, or ManifestError with issues. A valid result round-trips."""
    try:
        manifest = parse_manifest(data)
    except ManifestError as exc:
        assert exc.issues, "ManifestError without issues"
        for issue in exc.issues:
            assert isinstance(issue.path, str) and isinstance(issue.message, str) and issue.message
        return None
    again = parse_manifest(json.loads(manifest.model_dump_json()))
    assert again == manifest
    return manifest


def check_bytes(raw: bytes) -> Manifest | None:
    try:
        manifest = parse_manifest_bytes(raw)
    except ManifestError as exc:
        assert exc.issues
        return None
    assert isinstance(manifest, Manifest)
    return manifest


# ----------------------------------------------------------------------------------- strategies
PATH_SEGMENTS = st.sampled_from(["items", ":id", ":id", "..", ".", "", "a b", "x%20", "~u", "é", "*", "?"])
ENDPOINT_PATHS = st.one_of(
    st.lists(PATH_SEGMENTS, max_size=4).map(lambda segs: "/" + "/".join(segs)),
    st.text(max_size=20),
)
ENDPOINTS = st.fixed_dictionaries(
    {"method": st.sampled_from([*METHODS, "get", "HEAD", ""]), "path": ENDPOINT_PATHS},
    optional={"extra": JSON_VALUES},
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": st.one_of(st.from_regex(NAME_RE, fullmatch=True), st.sampled_from(["com.acme.x", "a", "A.b"])),
    "publisher": st.one_of(st.from_regex(PUBLISHER_RE, fullmatch=True), st.just("acme")),
    "version": st.sampled_from(["1.0.0", "0.0.1-rc.1+build.5", "01.0.0", "1.0", "1.0.0\n", "v1.0.0"]),
    "runtime": st.sampled_from(["wasm-component@1", "wasm-component@2", ""]),
    "capabilities": st.lists(st.sampled_from([*sorted(ALL_CAPABILITIES), "cap:nope", "cap:log.emit"])),
    "api": st.fixed_dictionaries({"endpoints": st.lists(ENDPOINTS, max_size=4)}),
    "ui": st.fixed_dictionaries(
        {
            "type": st.sampled_from(["iframe", "frame"]),
            "entry": st.sampled_from(["ui/index.html", "ui/../x", "/ui/a", "ui\\a", "ui/.h", "x.html", ""]),
        }
    ),
    "egress": st.lists(st.one_of(st.from_regex(EGRESS_RE, fullmatch=True), st.text(max_size=10)), max_size=3),
    "limits": st.fixed_dictionaries(
        {},
        optional={
            "timeout_ms": st.one_of(st.integers(-10, 400_000), JSON_VALUES),
            "memory_mb": st.one_of(st.integers(-10, 5000), JSON_VALUES),
        },
    ),
    "config_schema": st.one_of(
        st.sampled_from(
            [
                {"type": "object"},
                {"type": "string"},
                {"type": ["object"]},
                {"type": "object", "pattern": "["},
                {"type": "object", "properties": {"a": True}},
                {"$ref": "#/nope"},
                {"type": "object", "minProperties": -1},
            ]
        ),
        st.dictionaries(st.sampled_from(["type", "properties", "items", "not", "$ref", "enum"]), JSON_VALUES),
    ),
}


def _field(name: str) -> st.SearchStrategy[Any]:
    return st.one_of(FIELDS[name], JSON_VALUES)


MIXED = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries({}, optional={name: _field(name) for name in FIELDS}),
    st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=3),
)


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON document, to pick a mutation point."""
    out: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for key in keys:
            out.append((node, key))
            stack.append(node[key])
    return out


@st.composite
def mutated_manifest(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(doc)
        container, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["delete", "replace", "wrap", "stringify", "duplicate", "deepen", "add"]))
        value = container[key]
        if op == "delete":
            del container[key]
        elif op == "replace":
            container[key] = draw(JSON_VALUES)
        elif op == "wrap":
            container[key] = [value]
        elif op == "stringify":
            container[key] = (
                json.dumps(value, allow_nan=True) if not isinstance(value, str) else value + "/.."
            )
        elif op == "duplicate" and isinstance(value, list) and value:
            value.append(copy.deepcopy(value[0]))
        elif op == "deepen":
            depth = draw(st.sampled_from([2, 10, 60, 70, 300]))
            nested: Any = value
            for _ in range(depth):
                nested = (
                    {"not": nested} if isinstance(container, dict) and key == "config_schema" else [nested]
                )
            container[key] = nested
        elif op == "add" and isinstance(value, dict):
            value[draw(st.text(max_size=8))] = draw(JSON_VALUES)
    return doc


# ----------------------------------------------------------------------------------------- tests
def test_valid_manifest_is_valid() -> None:
    assert check(VALID) is not None
    assert check_bytes(json.dumps(VALID).encode()) is not None


def test_regressions_found_by_fuzzing() -> None:
    """Each used to escape as RecursionError or ValueError instead of ManifestError."""
    deep: Any = {"type": "object"}
    for _ in range(300):
        deep = {"not": deep}
    assert check({**VALID, "config_schema": deep}) is None  # jsonschema recursed past the stack
    assert check_bytes(json.dumps({**VALID, "config_schema": deep}).encode()) is None
    nested: Any = []
    for _ in range(50_000):
        nested = [nested]
    assert check({**VALID, "capabilities": nested}) is None  # str() of a deep list in a validator
    assert check_bytes(b'{"limits": {"timeout_ms": 1' + b"0" * 5000 + b"}}") is None  # int digit limit
    # JSON escapes that decode to text Postgres cannot store: refused with the field, never echoed.
    for escaped, found in ((rb"\ud800", "lone surrogate"), (rb"\u0000", "NUL")):
        schema = b'{"type": "object", "properties": {"g": {"type": "string", "title": "x' + escaped + b'"}}}'
        raw = json.dumps({**VALID, "config_schema": None}).encode().replace(b"null", schema)
        with pytest.raises(ManifestError) as caught:
            parse_manifest_bytes(raw)
        assert caught.value.issues[0].path == "config_schema.properties.g.title"
        assert found in caught.value.issues[0].message
        key = (
            json.dumps({**VALID, "config_schema": None})
            .encode()
            .replace(b"null", b'{"x' + escaped + b'": 1}')
        )
        with pytest.raises(ManifestError) as caught:
            parse_manifest_bytes(key)
        assert caught.value.issues[0].path == "config_schema" and "a key" in caught.value.issues[0].message


@scaled(200)
@given(MIXED)
def test_mixed_valid_and_garbage_fields(data: dict[str, Any]) -> None:
    check(data)


@FUZZ
@given(mutated_manifest())
def test_mutations_of_a_valid_manifest(data: Any) -> None:
    check(data)


@scaled(200)
@given(JSON_VALUES)
def test_any_json_value(data: Any) -> None:
    check(data)


def _strict(value: Any) -> bool:
    """json.dumps can write it and json.loads reads it back: finite floats, not too deep."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > 400 or (isinstance(node, float) and not math.isfinite(node)):
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


@scaled(200)
@given(st.one_of(MIXED, mutated_manifest()))
def test_bytes_and_object_entry_points_agree(data: Any) -> None:
    """parse_manifest_bytes(json.dumps(x)) accepts exactly what parse_manifest(x) accepts."""
    if not _strict(data):
        return
    from_object = check(data)
    from_bytes = check_bytes(json.dumps(data).encode())
    assert from_object == from_bytes


@scaled(400)
@given(st.binary(max_size=600))
def test_arbitrary_bytes(raw: bytes) -> None:
    check_bytes(raw)


HOSTILE_SNIPPETS = [
    b"NaN",
    b"-Infinity",
    b"1" + b"0" * 5000,
    b"1e999",
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b'"\\ud800"',
    b'"\\u0000"',
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b'{"name": 1, "name": 2}',
    b"",
    b"null",
]


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    base = draw(st.one_of(st.just(VALID), STRICT_JSON, MIXED.filter(_strict)))
    raw = bytearray(json.dumps(base, indent=draw(st.sampled_from([None, 2]))).encode())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "snippet"]))
        pos = draw(st.integers(0, len(raw)))
        if op == "flip" and pos < len(raw):
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del raw[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del raw[pos:]
        elif op == "snippet":
            raw[pos:pos] = draw(st.sampled_from(HOSTILE_SNIPPETS))
    return bytes(raw)


@FUZZ
@given(mutated_bytes())
def test_mutated_manifest_bytes(raw: bytes) -> None:
    check_bytes(raw)


@FUZZ
@given(st.sampled_from(HOSTILE_SNIPPETS), st.sampled_from(list(VALID)))
def test_hostile_json_in_each_field(snippet: bytes, field: str) -> None:
    doc = json.dumps({**VALID, field: "@@"}).encode()
    check_bytes(doc.replace(b'"@@"', snippet))
