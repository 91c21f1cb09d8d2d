"""core.affinity: CPU lists (EXT_CPUS) parsed, printed and checked against what the process may use."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from core.affinity import format_cpus, parse_cpus
from core.settings import RunnerSettings


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0", {0}), ("0-3", {0, 1, 2, 3}), ("0,2-3", {0, 2, 3}), (" 1 , 3 ", {1, 3}), ("2-2", {2})],
)
def test_cpu_lists_parse(text: str, cpus: set[int]) -> None:
    assert parse_cpus(text) == cpus


@pytest.mark.parametrize(
    ("cpus", "text"), [({0}, "0"), ({0, 1, 2, 5}, "0-2,5"), ({1, 3, 4, 5, 9}, "1,3-5,9")]
)
def test_cpu_lists_print_in_their_shortest_form(cpus: set[int], text: str) -> None:
    assert format_cpus(cpus) == text
    assert parse_cpus(text) == cpus


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("x", "'x' is not a CPU number or range"),
        ("0,", "'' is not a CPU number or range"),
        ("1-", "'1-' is not a CPU number or range"),
        ("-1", "'-1' is not a CPU number or range"),
        ("3-1", "the range '3-1' ends before it starts"),
        ("4096", "CPU 4096 is not one this process may run on"),
    ],
)
def test_a_bad_cpu_list_is_refused_naming_the_setting(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RunnerSettings(env="test", cpus=text)
    assert f"EXT_CPUS={text!r}" in str(refused.value)
    assert says in str(refused.value)


def test_no_cpu_list_pins_nothing_and_a_usable_one_is_kept() -> None:
    assert RunnerSettings(env="test").cpu_set is None
    first = min(os.sched_getaffinity(0))
    assert RunnerSettings(env="test", cpus=str(first)).cpu_set == frozenset({first})


def test_without_sched_setaffinity_a_cpu_list_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS has no sched_setaffinity: EXT_CPUS is refused with a reason, not an AttributeError."""
    monkeypatch.delattr(os, "sched_getaffinity")
    with pytest.raises(ValidationError) as refused:
        RunnerSettings(env="test", cpus="0")
    assert "pinning to CPUs needs Linux" in str(refused.value)
    assert RunnerSettings(env="test").cpu_set is None
