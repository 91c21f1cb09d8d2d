"""Temporal client helpers shared by the worker, the operator API, the CLI and the dev stack."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import RPCError

from core.errors import Unavailable
from core.process import note_temporal_bridge
from schema.temporal import NAMESPACE, SearchAttribute


async def connect_temporal(
    address: str, *, namespace: str = NAMESPACE, data_converter: DataConverter | None = None
) -> Client:
    """Connect or raise Unavailable (the operator API maps it to 503 control_plane_unavailable)."""
    note_temporal_bridge()
    try:
        return await Client.connect(
            address, namespace=namespace, data_converter=data_converter or DataConverter.default
        )
    except (RPCError, RuntimeError, OSError) as exc:
        raise Unavailable(f"temporal unavailable at {address}: {exc}") from exc


async def register_search_attributes(client: Client, *, namespace: str = NAMESPACE) -> list[str]:
    """Register extplane's search attributes (all Keyword); idempotent. Returns the names added now."""
    svc = client.operator_service
    existing = await svc.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = [a.value for a in SearchAttribute if a.value not in known]
    if missing:
        await svc.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes=dict.fromkeys(missing, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
            )
        )
    return missing
