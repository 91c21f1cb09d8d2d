"""The committed C fixtures are the ones their sources build (rebuild.sh updates these pins)."""

from __future__ import annotations

import hashlib

import pytest

from tests.runner.runner_helpers import FIXTURES

PINS = {
    "echo.wasm": "4fa712040097e14beeea33a136a6e451d13e3e0e6ed58566f544e60f00fb1b3f",
    "hostile.wasm": "471a2ab8fd20b8f22dc34e51b61b3aa64b86952f9a74e4f614044a7ab847c2be",
}


@pytest.mark.parametrize("name", sorted(PINS))
def test_fixture_is_pinned(name: str) -> None:
    assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == PINS[name]


def test_every_fixture_has_a_source_and_a_pin() -> None:
    built = {p.name for p in FIXTURES.glob("*.wasm")}
    assert built == set(PINS)
    assert all((FIXTURES / n.replace(".wasm", ".c")).exists() for n in built)
