"""extplane guest SDK for Python extensions (built into a component with componentize-py).

    from extplane_sdk import App, Request, Response, kv, log

    app = App()

    @app.route("GET", "/hello/:name")
    def hello(req: Request) -> Response:
        log.info(f"hello {req.params['name']}")
        return Response.json({"hello": req.params["name"]})

    WitWorld = app.export()   # the class componentize-py looks for

Host calls raise `HostError` subclasses (`Denied`, `NotFound`, `Conflict`, ...) instead of returning
error values; an uncaught exception in a route becomes a 500 JSON response and a stderr traceback.
"""

from extplane_sdk import context, http, kv, log, secrets, user
from extplane_sdk._app import App
from extplane_sdk._errors import Conflict, Denied, HostError, NotFound, QuotaExceeded
from extplane_sdk._types import Request, Response

__all__ = [
    "App",
    "Conflict",
    "Denied",
    "HostError",
    "NotFound",
    "QuotaExceeded",
    "Request",
    "Response",
    "context",
    "http",
    "kv",
    "log",
    "secrets",
    "user",
]
