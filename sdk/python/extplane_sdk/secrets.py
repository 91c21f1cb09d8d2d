"""This install's secrets (`cap:secrets.get`), decrypted by the runner only."""

from __future__ import annotations

from componentize_py_types import Err
from wit_world.imports import secrets as _secrets

from extplane_sdk._errors import from_err


def get(key: str) -> str:
    """Raises NotFound when the install has no such secret, Denied without the capability."""
    try:
        return _secrets.get(key)
    except Err as exc:
        raise from_err(exc) from None


def keys() -> list[str]:
    try:
        return list(_secrets.list_keys())
    except Err as exc:
        raise from_err(exc) from None
