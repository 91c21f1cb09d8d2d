"""Hostile guests written as component WAT, compiled in-process (wasmtime's `wat2wasm` parses
components): the shapes a C guest cannot express, many linear memories, table growth, and response
records whose strings all alias one buffer.

Each is a component exporting `handler` with the world's request/response records (canonical ABI by
hand, like fixtures/abi.h): the core export `handler` takes the 11 flat request words and returns a
pointer to the 24-byte response (status u16 @0, headers ptr/len @4/@8, body ptr/len @12/@16,
body-base64 u8 @20). The only import is the world's type-only `types` instance, so no capability is
involved, and each passes publish's component check (bench/hostile.py publishes two of them).
"""

from __future__ import annotations

import wasmtime

__all__ = ["ALIAS_HEADERS", "MANY_MEMORIES", "TABLE_AND_MEMORY", "component"]

# The world's record types come from a type-only import of `extplane:extension/types`, as in every
# component wit-component builds (fixtures/echo.wasm), so these guests also pass publish's check.
_TYPES = """
  (type $types' (instance
    (type (record (field "name" string) (field "value" string)))
    (export "header" (type (eq 0)))
    (type (list 1))
    (type (record (field "method" string) (field "path" string) (field "query" string)
      (field "headers" 2) (field "body" string) (field "body-base64" bool)))
    (export "request" (type (eq 3)))
    (type (record (field "status" u16) (field "headers" 2) (field "body" string) (field "body-base64" bool)))
    (export "response" (type (eq 5)))))
  (import "extplane:extension/types@1.0.0" (instance $types (type $types')))
  (alias export $types "request" (type $request))
  (alias export $types "response" (type $response))
"""

_LIFT = """
  (func $handler (param "req" $request) (result $response)
    (canon lift (core func $main "handler") (memory (core memory $main "memory"))
      (realloc (core func $main "cabi_realloc")) (post-return (core func $main "cabi_post_handler"))))
  (export "handler" (func $handler))
"""

# Shared by every main module: a bump allocator (the host lowers the request through it), a hex
# writer for reporting sizes in the body, and a page toucher so RSS shows what was granted.
_RUNTIME = """
    (global $heap (mut i32) (i32.const 4096))
    (func $alloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32) (local $end i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
      (local.set $end (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
        (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end)
                    (i32.shl (memory.size) (i32.const 16))) (i32.const 16)) (i32.const 1))) (i32.const -1))
          (then unreachable))))
      (global.set $heap (local.get $end))
      (local.get $p))
    (func (export "cabi_post_handler") (param i32))
    (func $hex (param $v i32) (param $dst i32)
      (local $i i32) (local $d i32)
      (loop $l
        (local.set $d (i32.and (i32.shr_u (local.get $v)
          (i32.sub (i32.const 28) (i32.shl (local.get $i) (i32.const 2)))) (i32.const 15)))
        (i32.store8 (i32.add (local.get $dst) (local.get $i))
          (i32.add (local.get $d)
            (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $d) (i32.const 10)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 8)))))
    (func $reply (param $status i32) (param $body i32) (param $len i32) (result i32)
      (i32.store16 (i32.const 16) (local.get $status))
      (i32.store (i32.const 28) (local.get $body))
      (i32.store (i32.const 32) (local.get $len))
      (i32.const 16))
"""

# Grows its own memory page by page until refused (or a 64 MiB ceiling), touching every 4 KiB.
_EXTRA_MEMORY = """
  (core module $Extra
    (memory (export "m") 0)
    (func (export "fill") (result i32)
      (local $page i32) (local $at i32)
      (block $done (loop $more
        (br_if $done (i32.ge_u (memory.size) (i32.const 1024)))
        (local.set $page (memory.grow (i32.const 1)))
        (br_if $done (i32.eq (local.get $page) (i32.const -1)))
        (local.set $at (i32.shl (local.get $page) (i32.const 16)))
        (loop $touch
          (i32.store8 (local.get $at) (i32.const 1))
          (local.set $at (i32.add (local.get $at) (i32.const 4096)))
          (br_if $touch (i32.and (local.get $at) (i32.const 0xffff))))
        (br $more)))
      (memory.size)))
"""


_INSTANTIATE = "(core instance $main (instantiate $Main))"


def component(main: str, *, before: str = "", instantiate: str = _INSTANTIATE) -> bytes:
    """A component binary around the core module `main` (which must be named `$Main`)."""
    text = f"(component {_TYPES} {before} {main} {instantiate} {_LIFT})"
    return bytes(wasmtime.wat2wasm(text))


def _many_memories(extra: int) -> bytes:
    imports = "\n".join(f'    (import "e{i}" "fill" (func $fill{i} (result i32)))' for i in range(extra))
    calls = " ".join(f"call $fill{i} i32.add" for i in range(extra))
    instances = "\n".join(f"  (core instance $e{i} (instantiate $Extra))" for i in range(extra))
    withs = " ".join(f'(with "e{i}" (instance $e{i}))' for i in range(extra))
    main = f"""
  (core module $Main
{imports}
    (memory (export "memory") 1)
    {_RUNTIME}
    (func (export "handler") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      memory.size {calls}
      i32.const 64
      call $hex
      (call $reply (i32.const 200) (i32.const 64) (i32.const 8))))
"""
    return component(
        main,
        before=_EXTRA_MEMORY + instances,
        instantiate=f"(core instance $main (instantiate $Main {withs}))",
    )


# 16 extra memories in 16 core instances, each filled to what the limiter grants. The body is the
# total of pages (hex) across all 17 memories.
MANY_MEMORIES = _many_memories(16)

# One memory grown (and touched) to the limit, then one table grown 1,024 slots at a time to the limit
# (or 4M slots, 32 MiB). The body is "<pages hex> <table slots hex>".
TABLE_AND_MEMORY = component(
    """
  (core module $Main
    (memory (export "memory") 1)
    (table $t 1 funcref)
    """
    + _RUNTIME
    + """
    (func (export "handler") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (local $page i32) (local $at i32)
      (block $done (loop $more
        (br_if $done (i32.ge_u (memory.size) (i32.const 4096)))
        (local.set $page (memory.grow (i32.const 1)))
        (br_if $done (i32.eq (local.get $page) (i32.const -1)))
        (local.set $at (i32.shl (local.get $page) (i32.const 16)))
        (loop $touch
          (i32.store8 (local.get $at) (i32.const 1))
          (local.set $at (i32.add (local.get $at) (i32.const 4096)))
          (br_if $touch (i32.and (local.get $at) (i32.const 0xffff))))
        (br $more)))
      (block $full (loop $grow
        (br_if $full (i32.ge_u (table.size $t) (i32.const 0x400000)))
        (br_if $full (i32.eq (table.grow $t (ref.null func) (i32.const 1024)) (i32.const -1)))
        (br $grow)))
      (call $hex (memory.size) (i32.const 64))
      (i32.store8 (i32.const 72) (i32.const 32))
      (call $hex (table.size $t) (i32.const 73))
      (call $reply (i32.const 200) (i32.const 64) (i32.const 17))))
"""
)

# The response's strings alias one 1 MiB buffer of 'x', so the guest's memory cap does not bound what
# the host would lift. The first byte of the query picks the shape:
#   a  64 headers whose values are all the 1 MiB buffer (64 MiB lifted from 1 MiB of memory)
#   s  one 700 KiB header and a 700 KiB body: each under the 1 MiB response cap, together over it
#   n  100,000 headers of 1 byte (count far over the runner's 256)
#   else  one small header and a small body
ALIAS_HEADERS = component(
    """
  (core module $Main
    (memory (export "memory") 1)
    """
    + _RUNTIME
    + """
    (data (i32.const 200) "x-h")
    (data (i32.const 208) "ok")
    (func $headers (param $n i32) (param $vlen i32) (result i32)
      (local $list i32) (local $i i32) (local $buf i32) (local $at i32)
      (local.set $buf (call $alloc (i32.const 0) (i32.const 0) (i32.const 16) (i32.const 1048576)))
      (memory.fill (local.get $buf) (i32.const 120) (i32.const 1048576))
      (local.set $list
        (call $alloc (i32.const 0) (i32.const 0) (i32.const 4) (i32.mul (local.get $n) (i32.const 16))))
      (block $done (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.add (local.get $list) (i32.shl (local.get $i) (i32.const 4))))
        (i32.store (local.get $at) (i32.const 200))
        (i32.store offset=4 (local.get $at) (i32.const 3))
        (i32.store offset=8 (local.get $at) (local.get $buf))
        (i32.store offset=12 (local.get $at) (local.get $vlen))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
      (i32.store (i32.const 20) (local.get $list))
      (i32.store (i32.const 24) (local.get $n))
      (local.get $buf))
    (func (export "handler") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (local $mode i32) (local $buf i32)
      (if (local.get 5) (then (local.set $mode (i32.load8_u (local.get 4)))))
      (if (i32.eq (local.get $mode) (i32.const 97))  ;; 'a'
        (then (drop (call $headers (i32.const 64) (i32.const 1048576)))
              (return (call $reply (i32.const 200) (i32.const 208) (i32.const 2)))))
      (if (i32.eq (local.get $mode) (i32.const 115))  ;; 's'
        (then (local.set $buf (call $headers (i32.const 1) (i32.const 716800)))
              (return (call $reply (i32.const 200) (local.get $buf) (i32.const 716800)))))
      (if (i32.eq (local.get $mode) (i32.const 110))  ;; 'n'
        (then (drop (call $headers (i32.const 100000) (i32.const 1)))
              (return (call $reply (i32.const 200) (i32.const 208) (i32.const 2)))))
      (drop (call $headers (i32.const 1) (i32.const 2)))
      (call $reply (i32.const 200) (i32.const 208) (i32.const 2))))
"""
)
