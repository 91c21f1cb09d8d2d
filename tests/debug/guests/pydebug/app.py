# mypy: ignore-errors
"""Python guest of the debug-stream tests: one call writes a guest log line, stdout and stderr, and
`/spin` then loops past its deadline so the runner adds a `runner` event with the same context."""

import sys

from extplane_sdk import App, Request, Response, log

app = App()


def _chatter(tag: str) -> None:
    log.info(f"log {tag}")
    sys.stdout.write(f"stdout {tag}\n")
    sys.stdout.flush()
    sys.stderr.write(f"stderr {tag}\n")
    sys.stderr.flush()


@app.route("GET", "/chatty")
def chatty(req: Request) -> Response:
    tag = req.args.get("tag", "-")
    _chatter(tag)
    return Response.json({"tag": tag})


@app.route("GET", "/quiet")
def quiet(req: Request) -> Response:
    return Response.json({"ok": True})


@app.route("GET", "/spin")
def spin(req: Request) -> Response:
    _chatter(req.args.get("tag", "-"))
    n = 0
    while True:
        n += 1


WitWorld = app.export()
