"""Hello: an echo endpoint, a counter in key/value storage, and logs."""

from extplane_sdk import App, Request, Response, context, kv, log

app = App()


@app.route("GET", "/hello")
def hello(req: Request) -> Response:
    ctx = context.get()
    name = req.args.get("name", "world")
    log.info(f"hello {name}")
    return Response.json({"hello": name, "tenant": ctx.tenant_id, "version": ctx.version})


@app.route("POST", "/echo")
def echo(req: Request) -> Response:
    return Response.json(
        {
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "headers": [list(h) for h in req.headers],
            "body": req.text(),
            "request_id": context.get().request_id,
        }
    )


@app.route("POST", "/counter")
def bump(_req: Request) -> Response:
    value = kv.increment("hits", namespace="counter")
    log.info(f"counter is now {value}")
    return Response.json({"counter": value})


@app.route("GET", "/counter")
def read(_req: Request) -> Response:
    entry = kv.get_or_none("hits", namespace="counter")
    return Response.json({"counter": int(entry.value) if entry else 0})


WitWorld = app.export()
