"""Namespace ownership: register / remove a namespace (admin), and the publish workflow's check."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RegisterNamespaceInput:
    """Start `WorkflowType.REGISTER_NAMESPACE` with id `register_namespace_workflow_id(prefix)`.

    `prefix` is spelled like an extension name (schema.namespaces.valid_prefix).
    """

    prefix: str
    publisher: str
    actor: str = "system"


@dataclass(frozen=True, kw_only=True)
class RegisterNamespaceResult:
    prefix: str
    publisher: str
    # False when the prefix already belonged to this publisher (idempotent; a claimed row becomes
    # 'registered').
    added: bool
    workflow_id: str = ""


@dataclass(frozen=True, kw_only=True)
class RemoveNamespaceInput:
    """Start `WorkflowType.REMOVE_NAMESPACE` with id `remove_namespace_workflow_id(prefix)`."""

    prefix: str
    actor: str = "system"


@dataclass(frozen=True, kw_only=True)
class RemoveNamespaceResult:
    prefix: str
    # The publisher it belonged to; "" when no such namespace was registered (a no-op).
    publisher: str = ""
    removed: bool = False
    workflow_id: str = ""


# --- activities -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CheckNamespaceInput:
    name: str
    publisher: str


@dataclass(frozen=True, kw_only=True)
class CheckNamespaceResult:
    """The publish may go on. `status`: "owner" (the namespace is the publisher's), "name_owner" (the
    name was published by this publisher before its namespace was registered for another) or "claim"
    (unregistered: register_version claims `namespace` for the publisher)."""

    status: str
    namespace: str
