"""schema.jsontext: what the registry cannot store is found, located, and never echoed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schema.jsontext import dotted, json_path, unstorable


@pytest.mark.parametrize(
    ("value", "loc", "fragment"),
    [
        ({"a": "x\x00y"}, ("a",), "NUL"),
        ({"a": [1, {"b": "\ud800"}]}, ("a", 1, "b"), "U+D800, a lone surrogate"),
        ({"a": {"k\x00": 1}}, ("a",), "a key contains a NUL"),
        ([0.5, float("nan")], (1,), "finite"),
        ({"deep": [[[[float("inf")]]]]}, ("deep", 0, 0, 0, 0), "finite"),
        (json.loads('{"s": "\\udfff"}'), ("s",), "U+DFFF"),
    ],
)
def test_found_and_located(value: Any, loc: tuple[str | int, ...], fragment: str) -> None:
    found = unstorable(value)
    assert found is not None
    assert found[0] == loc and fragment in found[1]
    assert "\x00" not in found[1] and "\ud800" not in found[1]


@pytest.mark.parametrize(
    "value", [{}, {"a": "é😀\u2028", "b": [1, 2.5, None, True], "c": {"d": ""}}, "plain", 1e308]
)
def test_storable_values_pass(value: Any) -> None:
    assert unstorable(value) is None


def test_deep_nesting_is_walked_without_recursion() -> None:
    nested: Any = "\x00"
    for _ in range(100_000):
        nested = [nested]
    found = unstorable(nested)
    assert found is not None and len(found[0]) == 100_000


def test_path_styles() -> None:
    assert dotted(("config_schema", "properties", "g", 0)) == "config_schema.properties.g[0]"
    assert json_path(("a", 0, "b")) == "$.a[0].b" and json_path(()) == "$"
