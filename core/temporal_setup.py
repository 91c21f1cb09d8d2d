"""`python -m core.temporal_setup`: prepare a Temporal cluster for extplane (idempotent).

What `extctl dev up` does for its dev server, for any cluster: registers the namespace
(`EXT_TEMPORAL_NAMESPACE`) when it does not exist yet, then extplane's search attributes (`TenantId`,
`ExtensionName`, `ExtensionVersion`, `ContentHash`, `Operation`, `Actor`, `RolloutState`; all
Keyword). The one-shot `temporal-setup` service of docker/compose.yaml runs it once the Temporal
frontend answers; it retries until `--wait` seconds have passed (a fresh cluster takes a while to
serve a new namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import timedelta

import structlog
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.errors import Unavailable
from core.logging import configure_logging
from core.process import run_main
from core.settings import CommonSettings
from core.temporal import connect_temporal, register_search_attributes

log = structlog.get_logger(__name__)


async def ensure_namespace(client: Client, namespace: str, *, retention: timedelta) -> bool:
    """Register `namespace` unless it exists; returns True when it was created now."""
    svc = client.workflow_service
    try:
        await svc.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
        return False
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    period = Duration()
    period.FromTimedelta(retention)
    try:
        await svc.register_namespace(
            RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=period)
        )
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        return False
    return True


async def setup(settings: CommonSettings, *, retention: timedelta, wait_seconds: float) -> list[str]:
    """Namespace, then search attributes, retried until `wait_seconds` pass. Returns the attributes
    added now."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        try:
            # Every request below names its namespace; connecting does not need it to exist yet.
            client = await connect_temporal(settings.temporal_address, namespace=settings.temporal_namespace)
            if await ensure_namespace(client, settings.temporal_namespace, retention=retention):
                log.info("temporal_namespace_registered", namespace=settings.temporal_namespace)
            return await register_search_attributes(client, namespace=settings.temporal_namespace)
        except (RPCError, Unavailable) as exc:
            if time.monotonic() >= deadline:
                raise
            log.info("temporal_setup_retrying", error=str(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m core.temporal_setup", description=__doc__)
    parser.add_argument("--retention-days", type=int, default=30, help="history retention of a new namespace")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to keep retrying")
    args = parser.parse_args(argv)
    settings = CommonSettings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    try:
        added = asyncio.run(
            setup(settings, retention=timedelta(days=args.retention_days), wait_seconds=args.wait)
        )
    except Exception as exc:  # one line for the operator, not a traceback
        print(f"error: temporal setup: {type(exc).__name__}: {exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from exc
    log.info("temporal_ready", namespace=settings.temporal_namespace, search_attributes_added=added)


if __name__ == "__main__":
    run_main(main)
