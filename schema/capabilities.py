"""The capability catalogue: what an extension may ask for and what each one unlocks.

A capability names a host interface of the WIT world. The runner links the real implementation of an
interface only when the install grants its capability; otherwise the guest gets the interface's typed
`denied` error. `cap:debug.logs` unlocks no host interface: it lets the tenant watch the debug stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Capability(StrEnum):
    CONTEXT_READ = "cap:context.read"
    LOG_EMIT = "cap:log.emit"
    USER_READ = "cap:user.read"
    SECRETS_GET = "cap:secrets.get"
    HTTP_FETCH = "cap:http.fetch"
    STORAGE_KV = "cap:storage.kv"
    UI_PROXY = "cap:ui.proxy"
    DEBUG_LOGS = "cap:debug.logs"


@dataclass(frozen=True, kw_only=True)
class CapabilityInfo:
    capability: Capability
    interface: str | None
    summary: str


WIT_PACKAGE = "extplane:extension"
WIT_VERSION = "1.0.0"


def wit_interface(name: str) -> str:
    """Fully qualified WIT interface name as a component imports it."""
    return f"{WIT_PACKAGE}/{name}@{WIT_VERSION}"


CATALOGUE: dict[Capability, CapabilityInfo] = {
    info.capability: info
    for info in (
        CapabilityInfo(
            capability=Capability.CONTEXT_READ,
            interface="context",
            summary="read the call context: tenant, extension, install, version, request id, config",
        ),
        CapabilityInfo(
            capability=Capability.LOG_EMIT,
            interface="log",
            summary="emit structured log lines to the runner log and the tenant's debug stream",
        ),
        CapabilityInfo(
            capability=Capability.USER_READ,
            interface="user",
            summary="read the calling user (id, email, name, kind) when the call has one",
        ),
        CapabilityInfo(
            capability=Capability.SECRETS_GET,
            interface="secrets",
            summary="read the install's secrets, decrypted in the runner only",
        ),
        CapabilityInfo(
            capability=Capability.HTTP_FETCH,
            interface="http",
            summary="outbound HTTP to hosts in the manifest's egress list that operator policy also allows",
        ),
        CapabilityInfo(
            capability=Capability.STORAGE_KV,
            interface="storage",
            summary="key/value storage scoped to the install, with revisions and quotas",
        ),
        CapabilityInfo(
            capability=Capability.UI_PROXY,
            interface="ui-proxy",
            summary="the iframe UI may call the handler through the gateway's ext-proxy route",
        ),
        CapabilityInfo(
            capability=Capability.DEBUG_LOGS,
            interface=None,
            summary="tenant users with scope ext:debug may stream this extension's debug events",
        ),
    )
}

# Granted to every install whether or not the manifest asks, as in the reference system.
DEFAULT_CAPABILITIES: frozenset[Capability] = frozenset(
    {Capability.CONTEXT_READ, Capability.LOG_EMIT, Capability.USER_READ}
)

ALL_CAPABILITIES: frozenset[str] = frozenset(c.value for c in Capability)


def effective_capabilities(requested: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[Capability]:
    """Requested capabilities plus the defaults. Raises ValueError on an unknown name."""
    unknown = sorted(set(requested) - ALL_CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities: {', '.join(unknown)}")
    return DEFAULT_CAPABILITIES | frozenset(Capability(c) for c in requested)
