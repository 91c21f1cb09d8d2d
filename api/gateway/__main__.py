"""`python -m api.gateway [--host H] [--port N] [--workers W]`: serve the gateway with uvicorn.

Defaults come from ApiSettings (EXT_GATEWAY_HOST / EXT_GATEWAY_PORT / EXT_GATEWAY_WORKERS). Each
worker process builds its own settings, caches, pools and invalidation subscription.
"""

from __future__ import annotations

import argparse

import uvicorn

from core.logging import configure_logging
from core.settings import ApiSettings


def main(argv: list[str] | None = None) -> None:
    settings = ApiSettings()
    parser = argparse.ArgumentParser(prog="python -m api.gateway", description="extplane tenant gateway")
    parser.add_argument("--host", default=settings.gateway_host)
    parser.add_argument("--port", type=int, default=settings.gateway_port)
    parser.add_argument("--workers", type=int, default=settings.gateway_workers)
    args = parser.parse_args(argv)
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    uvicorn.run(
        "api.gateway.app:create_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        loop="uvloop",
        # httptools with a bound on the request head (431), the same bound h11 would apply.
        http="api.gateway.protocol:BoundedHttpToolsProtocol",
        h11_max_incomplete_event_size=settings.gateway_max_header_bytes,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
