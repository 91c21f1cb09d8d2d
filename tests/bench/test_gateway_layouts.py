"""bench.gateway's co-located layouts: which process counts it measures by default, and how a
`--colocated` list is read."""

from __future__ import annotations

import argparse
import os

import pytest

from bench.gateway import _counts, default_colocated


def test_the_default_is_one_process_and_one_per_usable_cpu() -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert default_colocated() == sorted({1, cpus})


def test_a_colocated_list_is_process_counts_and_may_be_empty() -> None:
    assert _counts("1,2,4") == [1, 2, 4]
    assert _counts("") == []
    with pytest.raises(argparse.ArgumentTypeError, match="process counts"):
        _counts("2,0")
