"""Egress: fetch from an allowed host. The runner enforces the policy; the guest just asks.

`GET /upstream` fetches the install's configured `upstream_url`; `POST /fetch {"url": ...}` fetches any
URL, which shows the runner refusing what the manifest's egress list and operator policy do not allow.
"""

from extplane_sdk import App, HostError, Request, Response, context, http, log

app = App()


def _fetch(url: str) -> Response:
    try:
        got = http.fetch(url, timeout_ms=3000)
    except HostError as exc:
        log.warn(f"fetch refused: {exc.kind}")
        return Response.json({"error": exc.kind, "detail": exc.detail}, status=502)
    return Response.json({"status": got.status, "body": got.text()})


@app.route("GET", "/upstream")
def upstream(_req: Request) -> Response:
    return _fetch(context.get().config["upstream_url"])


@app.route("POST", "/fetch")
def fetch(req: Request) -> Response:
    return _fetch(req.json()["url"])


WitWorld = app.export()
