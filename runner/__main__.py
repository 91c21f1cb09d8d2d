"""`python -m runner`: serve the runner with uvicorn on settings.host:settings.port.

The debug sink is the Redis streams one (`EXT_DEBUG_REDIS_URL`, else `EXT_REDIS_URL`) unless
`EXT_DEBUG_SINK=memory`; its publisher thread lives as long as the server. With `EXT_CPUS` the
process pins itself (and so every thread it starts) to those CPUs first (core.affinity).
"""

from __future__ import annotations

import uvicorn

from core.affinity import pin_process
from core.logging import configure_logging
from core.settings import RunnerSettings
from runner._app import create_app
from runner._services import debug_sink_of


def main() -> None:
    settings = RunnerSettings()
    if settings.cpu_set is not None:
        pin_process(settings.cpu_set)  # before the threads start: they inherit it
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    sink, redis_sink = debug_sink_of(settings)
    if redis_sink is not None:
        redis_sink.start()
    try:
        uvicorn.run(
            create_app(settings, sink=sink),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_keep_alive=settings.keep_alive_s,
            loop="uvloop",
            http="httptools",
            lifespan="on",
        )
    finally:
        if redis_sink is not None:
            redis_sink.close()


if __name__ == "__main__":
    main()
