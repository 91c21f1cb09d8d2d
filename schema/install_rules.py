"""Install rules shared by the registry write (the source of truth) and the operator API (its preview):
which capabilities and egress hosts an install is granted, and where a rollback goes. Pure, no I/O.

Grants (docs/operator.md "Capabilities and egress"):

* a version *requests* its manifest capabilities ∪ schema.capabilities defaults, and its egress hosts;
* install grants what the version requests minus what the operator denies (`deny`). Defaults cannot be
  denied (the runner links them for every install), nor can something the version does not request;
* upgrade and rollback keep standing denials: what the current version requests but the install was
  not granted stays ungranted while the target requests it too. Whatever else the target requests and
  the install has not been granted is the change's *diff*: the operator must name each of its items in
  `accept` (or `deny` it) — `accept` missing an item is refused with consent_required, `accept` naming
  something outside the diff with invalid_request, so consent is always for exactly what is added.

Rollback without a target goes to the version the install ran before the current one, skipping versions
it was rolled back from: history is a stack, install and upgrade push, rollback pops. Rolling back
twice after 1.0 → 2.0 → 3.0 goes to 2.0, then 1.0 (never back up to 3.0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schema.capabilities import DEFAULT_CAPABILITIES, effective_capabilities

_DEFAULTS = frozenset(str(c) for c in DEFAULT_CAPABILITIES)


@dataclass(frozen=True, kw_only=True)
class GrantSet:
    """Capabilities and egress hosts: what a version requests, an install is granted, an operator
    accepts or denies. Sorted lists, so the JSON (payloads, audit rows) is stable."""

    capabilities: list[str] = field(default_factory=list)
    egress: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, capabilities: Iterable[str], egress: Iterable[str]) -> GrantSet:
        return cls(capabilities=sorted(set(capabilities)), egress=sorted(set(egress)))

    def __bool__(self) -> bool:
        return bool(self.capabilities or self.egress)

    def minus(self, other: GrantSet) -> GrantSet:
        return GrantSet.of(
            set(self.capabilities) - set(other.capabilities), set(self.egress) - set(other.egress)
        )

    def union(self, other: GrantSet) -> GrantSet:
        return GrantSet.of(
            set(self.capabilities) | set(other.capabilities), set(self.egress) | set(other.egress)
        )

    def as_json(self) -> dict[str, list[str]]:
        return {"capabilities": list(self.capabilities), "egress": list(self.egress)}


def requested(manifest: Mapping[str, Any]) -> GrantSet:
    """What a version asks for: its manifest capabilities plus the defaults, and its egress hosts."""
    caps = effective_capabilities([str(c) for c in manifest.get("capabilities") or []])
    return GrantSet.of((str(c) for c in caps), (str(h) for h in manifest.get("egress") or []))


@dataclass(frozen=True, kw_only=True)
class GrantDecision:
    """The outcome of a grant rule. `problem` (invalid_request) and a non-empty `missing`
    (consent_required) refuse the change; otherwise `granted` is the install's new grant."""

    requested: GrantSet
    granted: GrantSet
    # The items a version change adds beyond the current grant and standing denials.
    diff: GrantSet = GrantSet()
    # Items of the diff neither accepted nor denied.
    missing: GrantSet = GrantSet()
    problem: str = ""


def _deny_problem(deny: GrantSet, req: GrantSet) -> str:
    defaults = sorted(set(deny.capabilities) & _DEFAULTS)
    if defaults:
        return f"default capabilities cannot be denied: {', '.join(defaults)}"
    outside = deny.minus(req)
    if outside:
        return f"deny names what this version does not request: {_items(outside)}"
    return ""


def install_grant(manifest: Mapping[str, Any], deny: GrantSet | None) -> GrantDecision:
    """The grant of an install (or of a repeated install at its version): requested minus `deny`."""
    req = requested(manifest)
    deny = deny or GrantSet()
    problem = _deny_problem(deny, req)
    return GrantDecision(requested=req, granted=req.minus(deny), problem=problem)


def change_grant(
    current_manifest: Mapping[str, Any],
    granted_now: GrantSet,
    target_manifest: Mapping[str, Any],
    *,
    accept: GrantSet | None,
    deny: GrantSet | None,
) -> GrantDecision:
    """The grant after an upgrade or rollback from the current version to the target."""
    req = requested(target_manifest)
    deny = deny or GrantSet()
    standing = requested(current_manifest).minus(granted_now)  # denied earlier: stays denied
    diff = req.minus(granted_now).minus(standing)
    granted = req.minus(standing).minus(deny)
    problem = _deny_problem(deny, req)
    pending = diff.minus(deny)
    if not problem and accept is not None:
        extra = accept.minus(pending)
        if extra:
            problem = f"accept names what this change does not add: {_items(extra)}"
    missing = pending.minus(accept or GrantSet())
    return GrantDecision(requested=req, granted=granted, diff=diff, missing=missing, problem=problem)


def consent_message(name: str, version: str, missing: GrantSet) -> str:
    return (
        f"{name}@{version} asks for more than the install is granted: {_items(missing)}; "
        "re-send with exactly these accepted (extctl: --accept ITEM) or denied (--deny ITEM)"
    )


def consent_details(version: str, decision: GrantDecision) -> dict[str, Any]:
    """The body `details` of consent_required: what the change adds and what still needs consent."""
    return {
        "version": version,
        "added": decision.diff.as_json(),
        "missing": decision.missing.as_json(),
        "requested": decision.requested.as_json(),
    }


def _items(s: GrantSet) -> str:
    return ", ".join([*s.capabilities, *(f"egress {h}" for h in s.egress)])


def rollback_target(moves: Sequence[tuple[str, str | None, str | None]]) -> str | None:
    """The version a rollback without a target goes to, from the install's history in revision order
    as (operation, from_version, to_version); None when the install has run only its current version."""
    stack: list[str] = []
    for operation, frm, to in moves:
        if not to or frm == to or (stack and stack[-1] == to):
            continue  # not a version change (config, limits, a repeated install)
        if operation == "rollback" and to in stack:
            del stack[stack.index(to) + 1 :]
        else:
            stack.append(to)
    return stack[-2] if len(stack) >= 2 else None


def ran_before(moves: Sequence[tuple[str, str | None, str | None]], version: str) -> bool:
    """Whether the install ever ran `version` (a rollback --to may only go there)."""
    return any(to == version or frm == version for _op, frm, to in moves)
