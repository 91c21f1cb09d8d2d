"""Key/value storage of this install (`cap:storage.kv`). Values are strings; use json for structure."""

from __future__ import annotations

from dataclasses import dataclass

from componentize_py_types import Err
from wit_world.imports import storage

from extplane_sdk._errors import from_err

DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Entry:
    key: str
    value: str
    revision: int


def get(key: str, *, namespace: str = DEFAULT_NAMESPACE) -> Entry:
    """Raises NotFound when the key does not exist."""
    try:
        e = storage.get(namespace, key)
    except Err as exc:
        raise from_err(exc) from None
    return Entry(e.key, e.value, e.revision)


def get_or_none(key: str, *, namespace: str = DEFAULT_NAMESPACE) -> Entry | None:
    try:
        return get(key, namespace=namespace)
    except Exception as exc:
        if getattr(exc, "kind", "") == "not-found":
            return None
        raise


def put(
    key: str, value: str, *, namespace: str = DEFAULT_NAMESPACE, expected_revision: int | None = None
) -> int:
    """Store `value`; with `expected_revision` (0 = must not exist) raises Conflict on mismatch."""
    try:
        return storage.put(namespace, key, value, expected_revision)
    except Err as exc:
        raise from_err(exc) from None


def delete(key: str, *, namespace: str = DEFAULT_NAMESPACE, expected_revision: int | None = None) -> None:
    try:
        storage.delete(namespace, key, expected_revision)
    except Err as exc:
        raise from_err(exc) from None


def list_page(
    *, namespace: str = DEFAULT_NAMESPACE, cursor: str = "", limit: int = 50
) -> tuple[list[Entry], str]:
    """One page of entries in key order and the cursor of the next page ("" at the end)."""
    try:
        page = storage.list(namespace, cursor, limit)
    except Err as exc:
        raise from_err(exc) from None
    return [Entry(e.key, e.value, e.revision) for e in page.entries], page.next_cursor


def increment(key: str, *, namespace: str = DEFAULT_NAMESPACE, by: int = 1, attempts: int = 5) -> int:
    """Atomically add `by` to an integer counter (optimistic concurrency with retries)."""
    for _ in range(attempts):
        current = get_or_none(key, namespace=namespace)
        value = (int(current.value) if current else 0) + by
        try:
            put(key, str(value), namespace=namespace, expected_revision=current.revision if current else 0)
            return value
        except Exception as exc:
            if getattr(exc, "kind", "") != "conflict":
                raise
    raise RuntimeError(f"counter {key!r} stayed contended for {attempts} attempts")
