"""What one Store may allocate: a total under the call's memory cap, whatever the component declares.

wasmtime's store limiter (`Store.set_limits`, the C API's `wasmtime_store_limiter`) caps each linear
memory and each table separately; the counts of memories, tables and instances are store-wide. A
component can declare many memories (one core module with several, or several core instances), so
a per-memory cap alone multiplies: 16 extra memories took 512 MiB under a 32 MiB cap. The sound total
is the product of a count and a per-item size:

    linear memory  <= MAX_MEMORIES * memory_size
    tables         <= MAX_TABLES * table_elements * TABLE_ELEMENT_BYTES
    total          <= cap        (memory_size and table_elements are derived from the cap below)

Everything a guest can grow at run time is one of those two: the counts are fixed when the component
is instantiated (components cannot create memories or tables later), and `memory.grow` / `table.grow`
return -1 at the limit. wasm GC and exceptions are disabled in the engine (runner.compile) because
their objects live in a GC heap that the store limiter caps like one more memory, outside the count.

Measured on the guests the project builds (tests/runner): C guests 1 memory, <= 2 tables, <= 3
instances; componentize-py guests 1 memory, 2 tables (5,682 initial elements), 14 core instances.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasmtime import Store

__all__ = ["MAX_INSTANCES", "MAX_MEMORIES", "MAX_TABLES", "StoreBudget", "store_budget"]

MAX_MEMORIES = 1
MAX_TABLES = 8
MAX_INSTANCES = 64
# A table slot (funcref or externref) in wasmtime 50: 50M elements of table.grow cost 382 MiB of RSS.
TABLE_ELEMENT_BYTES = 8
# The part of the cap set aside for tables: 1/16, i.e. 4 MiB (65,536 slots per table) of 64 MiB.
TABLE_SHARE = 16


@dataclass(frozen=True, kw_only=True)
class StoreBudget:
    memory_size: int  # bytes, per linear memory (there is at most MAX_MEMORIES)
    table_elements: int  # slots, per table (there are at most MAX_TABLES)

    @property
    def total(self) -> int:
        """The most a store under this budget can hold in memories and tables, in bytes."""
        return MAX_MEMORIES * self.memory_size + MAX_TABLES * self.table_elements * TABLE_ELEMENT_BYTES

    def apply(self, store: Store) -> None:
        store.set_limits(
            memory_size=self.memory_size,
            table_elements=self.table_elements,
            instances=MAX_INSTANCES,
            tables=MAX_TABLES,
            memories=MAX_MEMORIES,
        )


def store_budget(cap_bytes: int) -> StoreBudget:
    """Split `cap_bytes` (the call's `memory_mb`, clamped) between linear memory and tables."""
    table_elements = cap_bytes // TABLE_SHARE // (MAX_TABLES * TABLE_ELEMENT_BYTES)
    tables = MAX_TABLES * table_elements * TABLE_ELEMENT_BYTES
    return StoreBudget(memory_size=(cap_bytes - tables) // MAX_MEMORIES, table_elements=table_elements)
