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
from runner._debug import DebugSink, InMemoryDebugSink
from runner._debug_redis import RedisDebugSink


def main() -> None:
    settings = RunnerSettings()
    if settings.cpu_set is not None:
        pin_process(settings.cpu_set)  # before the threads start: they inherit it
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    redis_sink: RedisDebugSink | None = None
    sink: DebugSink
    if settings.debug_sink == "redis":
        redis_sink = RedisDebugSink(
            settings.debug_redis,
            prefix=settings.debug_stream_prefix,
            maxlen=settings.debug_stream_maxlen,
            buffer_events=settings.debug_buffer_events,
            batch_events=settings.debug_batch_events,
            retry_max_s=settings.debug_retry_max_seconds,
        )
        redis_sink.start()
        sink = redis_sink
    else:
        sink = InMemoryDebugSink()
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
