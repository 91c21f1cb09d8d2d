"""Service-free units of the store budget, the engine's feature set and the bounded response lift."""

from __future__ import annotations

import pytest
import wasmtime

from runner._limits import MAX_MEMORIES, MAX_TABLES, store_budget
from runner.compile import new_engine

MiB = 1024 * 1024


@pytest.mark.parametrize("cap_mb", [1, 2, 4, 8, 13, 14, 16, 48, 64, 256, 4096])
def test_store_budget_is_a_total_under_the_cap(cap_mb: int) -> None:
    budget = store_budget(cap_mb * MiB)
    assert budget.total <= cap_mb * MiB
    assert budget.memory_size * MAX_MEMORIES >= cap_mb * MiB * 15 // 16  # tables take 1/16 at most
    if cap_mb >= 14:  # a componentize-py guest needs 12.6 MiB of memory and 5,682 slots in one table
        assert budget.memory_size >= 12.625 * MiB and budget.table_elements >= 5682
    assert MAX_TABLES * budget.table_elements * 8 <= cap_mb * MiB // 16


@pytest.mark.parametrize(
    "wat",
    [
        "(module (type $a (array (mut i8))) (func (result (ref $a)) (array.new_default $a (i32.const 9))))",
        "(module (tag $t) (func (throw $t)))",
    ],
    ids=["gc", "exceptions"],
)
def test_engine_refuses_features_whose_heap_escapes_the_limiter(wat: str) -> None:
    with pytest.raises(wasmtime.WasmtimeError):
        wasmtime.Module(new_engine(), wat)
