"""The committed test component: pinned by sha256, in sync with its WAT, and it really runs."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from wasmtime import Engine, Store
from wasmtime.component import Component, Linker, Record

from bundles.component import find_wasm_tools
from tests.bundles.bundle_helpers import COMPONENT, CORE_MODULE, FIXTURES, build_component

# Update with the output of tests/bundles/fixtures/rebuild.sh when handler.wat changes on purpose.
PINNED = {
    "handler.wasm": "0916dde745ed9485183aae765279998a0ee4e7a0a368bb89d9ed30e3f9523e5f",
    "core_module.wasm": "53f8f4d59313e02b44f6558864954a095addc6cc784cbf4649cc62cd2be5f0d4",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_fixture_is_pinned(name: str) -> None:
    actual = hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest()
    assert actual == PINNED[name], f"{name} changed; rebuild with fixtures/rebuild.sh and update PINNED"


def test_fixture_matches_its_wat_source(tmp_path: Path) -> None:
    assert build_component(tmp_path) == COMPONENT, (
        "handler.wasm is stale: run tests/bundles/fixtures/rebuild.sh"
    )
    subprocess.run(
        [str(find_wasm_tools()), "parse", str(FIXTURES / "handler.wat"), "-o", str(tmp_path / "core.wasm")],
        check=True,
    )
    assert (tmp_path / "core.wasm").read_bytes() == CORE_MODULE


def test_fixture_component_answers_a_request_under_wasmtime() -> None:
    engine = Engine()
    component = Component(engine, COMPONENT)
    store = Store(engine)
    instance = Linker(engine).instantiate(store, component)
    handler = instance.get_func(store, "handler")
    assert handler is not None
    request = Record()
    for field, value in {
        "method": "GET",
        "path": "/items/42",
        "query": "",
        "headers": [],
        "body": "",
        "body-base64": False,
    }.items():
        setattr(request, field, value)
    response = handler(store, request)
    handler.post_return(store)
    assert (response.status, response.headers, response.body) == (200, [], "/items/42")
    assert getattr(response, "body-base64") is False
