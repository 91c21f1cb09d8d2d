"""Host errors as Python exceptions: one class per common WIT error case, `kind` names the case."""

from __future__ import annotations

from typing import Any


class HostError(Exception):
    """A host call failed. `kind` is the WIT error case (kebab-case), `detail` its payload if any."""

    def __init__(self, kind: str, detail: Any = None) -> None:
        super().__init__(f"{kind}: {detail}" if detail is not None else kind)
        self.kind = kind
        self.detail = detail


class Denied(HostError):
    """The install was not granted the capability this call needs."""


class NotFound(HostError):
    pass


class Conflict(HostError):
    """A revision check failed; `revision` is the current revision (0: the key does not exist)."""

    @property
    def revision(self) -> int:
        return int(self.detail or 0)


class QuotaExceeded(HostError):
    pass


_BY_KIND: dict[str, type[HostError]] = {
    "denied": Denied,
    "not-found": NotFound,
    "missing": NotFound,
    "not-available": NotFound,
    "route-not-found": NotFound,
    "conflict": Conflict,
    "quota-exceeded": QuotaExceeded,
}


def _kebab(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("-")
        out.append(ch.lower())
    return "".join(out)


def from_err(exc: Exception) -> HostError:
    """Translate a componentize-py `Err(SomeError_Case(value))` into a HostError subclass."""
    value = getattr(exc, "value", None)
    case = type(value).__name__.split("_", 1)[-1] if value is not None else "internal"
    kind = _kebab(case)
    return _BY_KIND.get(kind, HostError)(kind, getattr(value, "value", None))
