"""Namespace activities: the publish workflow's ownership check, and an admin's register / remove."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities._errors import activity_errors
from core.errors import Forbidden, InvalidInput
from registry import read_namespaces, write
from schema.errors import ErrorCode
from schema.namespaces import NamespacePolicy, Verdict, decide, implicit_namespace, valid_prefix
from schema.payloads.namespaces import (
    CheckNamespaceInput,
    CheckNamespaceResult,
    RegisterNamespaceInput,
    RegisterNamespaceResult,
    RemoveNamespaceInput,
    RemoveNamespaceResult,
)


class NamespaceActivities:
    def __init__(self, pool: asyncpg.Pool, *, policy: NamespacePolicy = NamespacePolicy.CLAIM) -> None:
        self.pool = pool
        # The worker's EXT_NAMESPACE_POLICY: workflows never read settings, the activity holds it.
        self.policy = policy

    @activity.defn(name="check_namespace")
    async def check_namespace(self, inp: CheckNamespaceInput) -> CheckNamespaceResult:
        """May `publisher` publish `name`? Read-only: a claim is written by register_version."""
        with activity_errors():
            owner = await read_namespaces.name_owner(self.pool, inp.name)
            ns = await read_namespaces.namespace_of(self.pool, inp.name)
            verdict = decide(
                inp.publisher,
                name_owner=owner,
                namespace=(ns.prefix, ns.publisher) if ns is not None else None,
            )
            if verdict is Verdict.NAME_TAKEN:
                raise Forbidden(
                    f"extension {inp.name} belongs to publisher {owner!r}, not {inp.publisher!r}",
                    code=ErrorCode.NAMESPACE_OWNED,
                    details={"name": inp.name},
                )
            if verdict is Verdict.NAMESPACE_TAKEN and ns is not None:
                raise Forbidden(
                    f"extension name {inp.name} is in namespace {ns.prefix} of publisher "
                    f"{ns.publisher!r}, not {inp.publisher!r}",
                    code=ErrorCode.NAMESPACE_OWNED,
                    details={"name": inp.name, "namespace": ns.prefix},
                )
            if verdict is Verdict.UNREGISTERED:
                implicit = implicit_namespace(inp.name)
                if self.policy is NamespacePolicy.STRICT:
                    raise Forbidden(
                        f"no namespace covering {inp.name} is registered; an admin registers one "
                        f"(extctl namespaces add {implicit} --publisher {inp.publisher})",
                        code=ErrorCode.NAMESPACE_UNREGISTERED,
                        details={"name": inp.name, "namespace": implicit},
                    )
                return CheckNamespaceResult(status="claim", namespace=implicit)
        return CheckNamespaceResult(status=verdict.value, namespace=ns.prefix if ns is not None else inp.name)

    @activity.defn(name="register_namespace")
    async def register_namespace(self, inp: RegisterNamespaceInput) -> RegisterNamespaceResult:
        with activity_errors():
            if not valid_prefix(inp.prefix):
                raise InvalidInput(
                    f"namespace {inp.prefix!r} must be spelled like an extension name, e.g. com.acme"
                )
            added = await write.register_namespace(
                self.pool,
                prefix=inp.prefix,
                publisher=inp.publisher,
                workflow_id=activity.info().workflow_id or "",
                created_by=inp.actor,
            )
        return RegisterNamespaceResult(prefix=inp.prefix, publisher=inp.publisher, added=added)

    @activity.defn(name="remove_namespace")
    async def remove_namespace(self, inp: RemoveNamespaceInput) -> RemoveNamespaceResult:
        with activity_errors():
            owner = await write.remove_namespace(self.pool, prefix=inp.prefix)
        return RemoveNamespaceResult(prefix=inp.prefix, publisher=owner or "", removed=owner is not None)
