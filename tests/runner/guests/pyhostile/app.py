# mypy: ignore-errors
"""Python guest for the runner's tests: stderr flood, memory bomb, an uncaught exception, a long
sleep, and a probe of the host APIs whose values are lists and records (user, secrets.keys, kv
paging, log rate limit)."""

import sys
import time

from extplane_sdk import App, HostError, Request, Response, kv, log, secrets, user

app = App()


@app.route("POST", "/stderr-flood")
def flood(req: Request) -> Response:
    line = "x" * 1023 + "\n"
    for _ in range(4096):  # 4 MiB to stderr; the runner keeps 8 KiB
        sys.stderr.write(line)
    sys.stderr.flush()
    return Response.text("flooded")


@app.route("POST", "/alloc")
def alloc(req: Request) -> Response:
    blobs = []
    while True:
        blobs.append(bytearray(1 << 20))


@app.route("POST", "/sleep")
def sleep(req: Request) -> Response:
    # A WASI monotonic-clock pollable: before runner/_wasi_block.py it blocked in the host.
    started = time.monotonic()
    time.sleep(float(req.args.get("s", "3")))
    return Response.text(f"{time.monotonic() - started:.3f}")


@app.route("POST", "/raise")
def boom(req: Request) -> Response:
    raise ValueError("boom")


def _attempt(fn):
    try:
        return fn()
    except HostError as exc:
        return {"error": exc.kind}


@app.route("POST", "/probe")
def probe(req: Request) -> Response:
    u = _attempt(user.get)
    out = {
        "user": None if u is None else (u if isinstance(u, dict) else [u.id, u.email, u.name, u.kind]),
        "secret_keys": _attempt(secrets.keys),
        "logged": sum(1 for i in range(150) if log.info(f"line {i}")),
    }
    if req.args.get("kv"):
        for i in range(7):
            kv.put(f"k{i}", str(i), namespace="probe")
        keys, cursor = [], ""
        while True:
            entries, cursor = kv.list_page(namespace="probe", cursor=cursor, limit=3)
            keys += [e.key for e in entries]
            if not cursor:
                break
        kv.delete("k0", namespace="probe")
        out["kv"] = keys
        out["after_delete"] = _attempt(lambda: kv.get("k0", namespace="probe"))
    return Response.json(out)


WitWorld = app.export()
