"""`python -m api.gateway [--host H] [--port N] [--workers W] [--reuse-port]`: serve the gateway.

Defaults come from ApiSettings (EXT_GATEWAY_HOST / EXT_GATEWAY_PORT / EXT_GATEWAY_WORKERS /
EXT_GATEWAY_REUSE_PORT). Each worker process builds its own settings, caches, pools and invalidation
subscription.

Co-located mode (EXT_RUNNER_URL=local:) runs guests in this process, configured by the runner's EXT_
settings, which are checked here before anything starts; EXT_CPUS then pins the process, as it pins a
runner. `--reuse-port` binds with SO_REUSEPORT so that several such processes, one per CPU, serve one
port (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import uvicorn

from core.affinity import pin_process
from core.logging import configure_logging
from core.settings import ApiSettings, RunnerSettings


def main(argv: list[str] | None = None) -> None:
    settings = ApiSettings()
    parser = argparse.ArgumentParser(prog="python -m api.gateway", description="extplane tenant gateway")
    parser.add_argument("--host", default=settings.gateway_host)
    parser.add_argument("--port", type=int, default=settings.gateway_port)
    parser.add_argument("--workers", type=int, default=settings.gateway_workers)
    parser.add_argument(
        "--reuse-port",
        action=argparse.BooleanOptionalAction,
        default=settings.gateway_reuse_port,
        help="bind with SO_REUSEPORT (one worker per process)",
    )
    args = parser.parse_args(argv)
    if args.reuse_port and args.workers != 1:
        parser.error("--reuse-port shares the port between processes: run each with --workers 1")
    if settings.colocated:
        runner = RunnerSettings()  # a bad runner setting stops the gateway here, not at its first call
        if runner.cpu_set is not None:
            pin_process(runner.cpu_set)  # before any thread starts: they inherit it
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    options: dict[str, Any] = {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_config": None,
        "access_log": False,
        "loop": "uvloop",
        # httptools with a bound on the request head (431), the same bound h11 would apply.
        "http": "api.gateway.protocol:BoundedHttpToolsProtocol",
        "h11_max_incomplete_event_size": settings.gateway_max_header_bytes,
        "lifespan": "on",
    }
    app = "api.gateway.app:create_app_from_env"
    if args.reuse_port:
        server = uvicorn.Server(uvicorn.Config(app, **options))
        server.run(sockets=[_reuse_port_socket(args.host, args.port)])
    else:
        uvicorn.run(app, **options)


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


if __name__ == "__main__":
    main()
