"""The Temporal worker: settings → clients → activity classes → Workers (`python -m workflows.worker`).

The only module importing both `workflows/` and `activities/` (STYLE.md 1). One process serves the
control queue (every workflow and the I/O activities) and the compile queue (precompilation on a thread
pool), or only one of them (`EXT_WORKER_QUEUES=control|compile`), so compilation can scale apart.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities._logging import LogContextInterceptor
from activities.audit import AuditActivities
from activities.bundles import BlobStore, BundleActivities, open_blob_store
from activities.compile import CompileActivities
from activities.namespaces import NamespaceActivities
from activities.notify import NotifyActivities
from activities.registry import RegistryActivities
from activities.rollout import RolloutActivities
from activities.schedules import ScheduleActivities
from activities.secrets import SecretsActivities
from activities.tokens import token_activities
from activities.trust import TrustActivities
from core.codec import data_converter
from core.crypto import Keyring
from core.db import create_pool
from core.logging import configure_logging
from core.process import run_main
from core.redis import create_redis
from core.settings import DEV_RUNNER_AUTH, WorkerSettings
from core.temporal import connect_temporal, register_search_attributes
from schema.namespaces import NamespacePolicy
from schema.schedules import SchedulePolicy
from workflows.install import InstallWorkflow
from workflows.install_change import InstallChangeWorkflow
from workflows.namespaces import RegisterNamespaceWorkflow, RemoveNamespaceWorkflow
from workflows.publish import PublishWorkflow
from workflows.quarantine import InstallQuarantineWorkflow
from workflows.rollout import RolloutWorkflow
from workflows.rotation import RotateMasterKeyWorkflow
from workflows.scheduled import ScheduleControlWorkflow, ScheduledRunWorkflow
from workflows.schedules import ensure_rotation_schedule
from workflows.sign_verify import SignVerifyWorkflow
from workflows.tokens import TOKEN_WORKFLOWS
from workflows.trust import AddTrustKeyWorkflow, RevokeKeyWorkflow

__all__ = [
    "WORKFLOWS",
    "build_workers",
    "control_activities",
    "main",
    "register_search_attributes",
    "run_worker",
    "running_workers",
]

log = structlog.get_logger(__name__)

WORKFLOWS: list[type] = [
    PublishWorkflow,
    SignVerifyWorkflow,
    AddTrustKeyWorkflow,
    RevokeKeyWorkflow,
    InstallQuarantineWorkflow,
    InstallWorkflow,
    InstallChangeWorkflow,
    RotateMasterKeyWorkflow,
    RegisterNamespaceWorkflow,
    RemoveNamespaceWorkflow,
    RolloutWorkflow,
    ScheduledRunWorkflow,
    ScheduleControlWorkflow,
    *TOKEN_WORKFLOWS,
]


def control_activities(
    *,
    pool: asyncpg.Pool,
    store: BlobStore,
    redis: aioredis.Redis,
    keyring: Keyring,
    namespace_policy: NamespacePolicy = NamespacePolicy.CLAIM,
    client: Client | None = None,
    schedule_policy: SchedulePolicy | None = None,
    runner_url: str = "http://127.0.0.1:8091",
    runner_auth: str = DEV_RUNNER_AUTH,
) -> list[Callable[..., Any]]:
    """Every activity of the control queue, bound to its dependencies (the rollout and schedule
    activities only with a Temporal `client`: they send changes to install entities and Schedules)."""
    registry = RegistryActivities(pool, schedules=schedule_policy)
    bundles = BundleActivities(store)
    trust = TrustActivities(pool)
    secrets = SecretsActivities(pool, keyring)
    audit = AuditActivities(pool)
    notify = NotifyActivities(redis)
    namespaces = NamespaceActivities(pool, policy=namespace_policy)
    acts: list[Callable[..., Any]] = [
        bundles.inspect_bundle,
        bundles.promote_bundle,
        bundles.discard_blobs,
        registry.lookup_published,
        registry.register_version,
        registry.apply_install_change,
        trust.verify_signature,
        trust.add_trust_key,
        trust.mark_key_revoked,
        trust.list_signed_bundles,
        trust.revoke_bundle_versions,
        secrets.set_secrets,
        secrets.rewrap_data_keys,
        audit.record_audit,
        notify.publish_invalidation,
        namespaces.check_namespace,
        namespaces.register_namespace,
        namespaces.remove_namespace,
        *token_activities(pool, redis),  # type: ignore[list-item]
    ]
    if client is not None:
        rollout = RolloutActivities(pool, client)
        acts += [rollout.select_targets, rollout.apply_wave, rollout.measure_wave]
        schedules = ScheduleActivities(pool, client, runner_url=runner_url, runner_auth=runner_auth)
        acts += [schedules.sync_schedules, schedules.control_schedule, schedules.run_scheduled]
    return acts


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Hold the cyclic garbage collector while a Worker validates its workflows in the sandbox.

    Validation imports every workflow module afresh in a sandbox. On CPython 3.11, a collection that
    runs a finalizer which imports something inside importlib's module-lock bookkeeping corrupts it
    and the outer import fails with `KeyError: <thread id>` (CPython gh-91351, fixed in 3.12). Seen
    once in CI as "Failed validating workflow AddTrustKey", which stops the worker at startup. The
    window is a few milliseconds, once per process, so pausing collection costs nothing.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_workers(
    client: Client,
    *,
    control_task_queue: str,
    compile_task_queue: str,
    queues: Sequence[str],
    pool: asyncpg.Pool,
    store: BlobStore,
    redis: aioredis.Redis,
    keyring: Keyring,
    compile_executor: ThreadPoolExecutor,
    compile_threads: int = 2,
    max_concurrent_activities: int = 50,
    namespace_policy: NamespacePolicy = NamespacePolicy.CLAIM,
    schedule_policy: SchedulePolicy | None = None,
    runner_url: str = "http://127.0.0.1:8091",
    runner_auth: str = DEV_RUNNER_AUTH,
) -> list[Worker]:
    workers: list[Worker] = []
    if "control" in queues:
        with _no_cyclic_gc():
            workers.append(
                Worker(
                    client,
                    task_queue=control_task_queue,
                    workflows=WORKFLOWS,
                    activities=control_activities(
                        pool=pool,
                        store=store,
                        redis=redis,
                        keyring=keyring,
                        namespace_policy=namespace_policy,
                        client=client,
                        schedule_policy=schedule_policy,
                        runner_url=runner_url,
                        runner_auth=runner_auth,
                    ),
                    max_concurrent_activities=max_concurrent_activities,
                    interceptors=[LogContextInterceptor()],
                )
            )
    if "compile" in queues:
        compile_acts = CompileActivities(store, compile_executor)
        workers.append(
            Worker(
                client,
                task_queue=compile_task_queue,
                activities=[compile_acts.precompile_component],
                max_concurrent_activities=compile_threads,
                interceptors=[LogContextInterceptor()],
            )
        )
    return workers


async def run_worker(settings: WorkerSettings, *, stop: asyncio.Event | None = None) -> None:
    """Connect everything, run until `stop` is set (or SIGINT/SIGTERM), then shut down cleanly."""
    keyring = Keyring.parse(settings.master_keys.get_secret_value())
    client = await connect_temporal(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(keyring),
    )
    await register_search_attributes(client, namespace=settings.temporal_namespace)
    queues = [q.strip() for q in settings.worker_queues.split(",") if q.strip()]
    if "control" in queues and settings.rotation_schedule_cron:
        await ensure_rotation_schedule(
            client, cron=settings.rotation_schedule_cron, task_queue=settings.control_task_queue
        )
    pool = await create_pool(settings.database_url, min_size=1, max_size=10)
    redis = create_redis(settings.redis_url)
    executor = ThreadPoolExecutor(max_workers=settings.compile_threads, thread_name_prefix="compile")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass  # not the main thread (tests run the worker in-process)
    workers = build_workers(
        client,
        control_task_queue=settings.control_task_queue,
        compile_task_queue=settings.compile_task_queue,
        queues=queues,
        pool=pool,
        store=open_blob_store(settings.blob_root),
        redis=redis,
        keyring=keyring,
        compile_executor=executor,
        compile_threads=settings.compile_threads,
        max_concurrent_activities=settings.max_concurrent_activities,
        namespace_policy=settings.namespace_policy,
        schedule_policy=SchedulePolicy(
            min_interval_s=settings.schedule_min_interval_s, max_per_tenant=settings.schedule_max_per_tenant
        ),
        runner_url=",".join(settings.runner_http_urls),
        runner_auth=settings.runner_auth.get_secret_value(),
    )
    try:
        async with running_workers(workers):
            log.info("worker_started", queues=queues, control_task_queue=settings.control_task_queue)
            await stop.wait()
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        await redis.aclose()
        await pool.close()
    log.info("worker_stopped")


class running_workers:
    """Run several Workers together (`async with`), shutting all down on exit."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> None:
        self.tasks = [asyncio.create_task(w.run()) for w in self.workers]

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(w.shutdown() for w in self.workers), return_exceptions=True)
        await asyncio.gather(*self.tasks, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workflows.worker", description=__doc__)
    parser.add_argument("--queues", help="control, compile or both (default: EXT_WORKER_QUEUES)")
    parser.add_argument("--task-queue", help="control task queue (default: EXT_CONTROL_TASK_QUEUE)")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.queues:
        overrides["worker_queues"] = args.queues
    if args.task_queue:
        overrides["control_task_queue"] = args.task_queue
    settings = WorkerSettings(**overrides)
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    run_main(main)
