"""The call context (`cap:context.read`, granted by default)."""

from __future__ import annotations

from dataclasses import dataclass

from componentize_py_types import Err
from wit_world.imports import context as _context

from extplane_sdk._errors import from_err


@dataclass(frozen=True)
class Context:
    tenant_id: str
    extension: str
    install_id: str
    version: str
    content_hash: str
    request_id: str
    config: dict[str, str]


def get() -> Context:
    try:
        c = _context.get_context()
    except Err as exc:
        raise from_err(exc) from None
    return Context(
        c.tenant_id,
        c.extension,
        c.install_id,
        c.version,
        c.content_hash,
        c.request_id,
        {kv.key: kv.value for kv in c.config},
    )
