"""`python -m core.healthcheck`: container health probes for images without curl (docker/compose.yaml).

    python -m core.healthcheck http://127.0.0.1:8091/healthz   # exit 0 on HTTP 200 within --timeout
    python -m core.healthcheck worker                          # this host's worker polls its queues

The worker has no HTTP port: its probe asks Temporal (DescribeTaskQueue) whether a poller whose
identity ends in `@<this hostname>` (the SDK's default identity is `<pid>@<hostname>`) polls each
queue this container serves (`EXT_WORKER_QUEUES`: the control and/or compile queue). Exit 0 when
healthy, 1 with one line on stderr otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from core.process import run_main
from core.settings import CommonSettings, WorkerSettings
from schema.temporal import compile_task_queue_for


def check_http(url: str, *, timeout: float) -> str | None:
    """None when `url` answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status: int = resp.status
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} unreachable: {exc}"
    return None if status == 200 else f"{url} answered {status}"


def worker_queues(queues: str, control_task_queue: str) -> list[str]:
    """Task queue names a worker with EXT_WORKER_QUEUES=`queues` polls."""
    names = {q.strip() for q in queues.split(",") if q.strip()}
    out: list[str] = []
    if "control" in names:
        out.append(control_task_queue)
    if "compile" in names:
        out.append(compile_task_queue_for(control_task_queue))
    return out


async def check_worker(settings: CommonSettings, queues: Sequence[str], *, hostname: str) -> str | None:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from core.temporal import connect_temporal

    client = await connect_temporal(settings.temporal_address, namespace=settings.temporal_namespace)
    for queue in queues:
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=settings.temporal_namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            )
        )
        if not any(p.identity.endswith(f"@{hostname}") for p in resp.pollers):
            return f"no poller of this host ({hostname}) on task queue {queue!r}"
    return None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m core.healthcheck", description=__doc__)
    parser.add_argument("target", help="an http(s) URL, or `worker`")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.target == "worker":
        settings = WorkerSettings()  # the worker container's own environment
        queues = worker_queues(settings.worker_queues, settings.control_task_queue)
        try:
            problem = asyncio.run(
                asyncio.wait_for(check_worker(settings, queues, hostname=socket.gethostname()), args.timeout)
            )
        except Exception as exc:
            problem = f"temporal check failed: {type(exc).__name__}: {exc}"
    else:
        problem = check_http(args.target, timeout=args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)  # noqa: T201
        raise SystemExit(1)


if __name__ == "__main__":
    run_main(main)
