"""The calling user (`cap:user.read`, granted by default); None when the call has no user."""

from __future__ import annotations

from dataclasses import dataclass

from componentize_py_types import Err
from wit_world.imports import user as _user

from extplane_sdk._errors import from_err


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    kind: str


def get() -> User | None:
    try:
        u = _user.get_user()
    except Err as exc:
        err = from_err(exc)
        if err.kind == "not-available":
            return None
        raise err from None
    return User(u.id, u.email, u.name, u.kind)
