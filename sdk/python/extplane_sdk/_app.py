"""Routing and the export to componentize-py's `WitWorld`."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

from extplane_sdk._types import Request, Response, decode_body, encode_body

Handler = Callable[[Request], Response]


def _match(template: str, path: str) -> dict[str, str] | None:
    t = [p for p in template.strip("/").split("/") if p]
    p = [s for s in path.strip("/").split("/") if s]
    if len(t) != len(p):
        return None
    params: dict[str, str] = {}
    for ts, ps in zip(t, p, strict=True):
        if ts.startswith(":"):
            params[ts[1:]] = ps
        elif ts != ps:
            return None
    return params


class App:
    def __init__(self) -> None:
        self._routes: list[tuple[str, str, Handler]] = []

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Register a handler for METHOD and a path template (`:name` matches one segment)."""

        def register(fn: Handler) -> Handler:
            self._routes.append((method.upper(), path, fn))
            return fn

        return register

    def dispatch(self, req: Request) -> Response:
        allowed = False
        for method, template, fn in self._routes:
            params = _match(template, req.path)
            if params is None:
                continue
            allowed = True
            if method == req.method.upper():
                req.params = params
                try:
                    return fn(req)
                except MemoryError:
                    raise  # let the runner see an out-of-memory guest, not a tidy 500
                except Exception:
                    traceback.print_exc(file=sys.stderr)
                    return Response.json({"error": "handler_error"}, status=500)
        if allowed:
            return Response.json({"error": "method_not_allowed"}, status=405)
        return Response.json({"error": "not_found", "path": req.path}, status=404)

    def export(self) -> type:
        """The `WitWorld` class componentize-py instantiates; assign it to `WitWorld` in app.py."""
        import wit_world
        from wit_world.imports import types

        app = self

        class WitWorld(wit_world.WitWorld):  # type: ignore[misc,name-defined]
            def handler(self, req: types.Request) -> types.Response:
                request = Request(
                    method=req.method,
                    path=req.path,
                    query=req.query,
                    headers=[(h.name, h.value) for h in req.headers],
                    body=decode_body(req.body, req.body_base64),
                )
                resp = app.dispatch(request)
                text, is_b64 = encode_body(resp.body)
                headers = [types.Header(name=k, value=v) for k, v in resp.headers]
                return types.Response(status=resp.status, headers=headers, body=text, body_base64=is_b64)

        return WitWorld
