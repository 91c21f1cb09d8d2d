"""The wasmtime runner: executes extension components per request, isolated and metered.

Public API (everything else is private, in `_*.py` modules):

* `create_app(settings)` — the ASGI app of `python -m runner` (`POST /v1/execute`, `/healthz`, `/metrics`).
* `runner.compile` — `engine_config`, `engine_fingerprint`, `precompile` for the publish activity.
* `runner.errors` — the error tree; `DebugSink` / `InMemoryDebugSink` / `DebugEvent` — the debug port.
"""

from runner._app import create_app
from runner._debug import DebugEvent, DebugSink, InMemoryDebugSink
from runner.compile import engine_config, engine_fingerprint, precompile

__all__ = [
    "DebugEvent",
    "DebugSink",
    "InMemoryDebugSink",
    "create_app",
    "engine_config",
    "engine_fingerprint",
    "precompile",
]
