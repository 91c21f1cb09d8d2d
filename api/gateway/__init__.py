"""The tenant-facing gateway: `ANY /api/ext/{name}/{path}` → the runner's `POST /v1/execute`.

    app.py            the ASGI app (plain ASGI: one hot route) and the policy order
    auth.py           bearer token (api.auth) → the call's one tenant; operator impersonation
    installs.py       install resolution cache + the Redis pub/sub invalidation listener
    cache.py          TTL cache with single-flight loads and invalidation-race protection
    envelope.py       the install's pre-validated envelope fragments; endpoint matching
    ratelimit.py      the Redis token bucket (one Lua script, one round trip), fail-closed
    http.py           header policy in and out, capped body reading, runner answer mapping
    runner_client.py  raw HTTP/1.1 keep-alive client for the runner hop
    execlog.py        execution_log rows, queued and COPY'd in batches off the request path
    metrics.py        Prometheus metrics of the process
    resources.py      what a process holds open, built at ASGI lifespan startup
    errors.py         the gateway's error tree: one status and code per failure
    protocol.py       uvicorn's httptools protocol with a bound on the request head (431)
    paths.py          path-segment checks: no `.`/`..` however encoded (ext routes, ext-ui hop)
    debug_access.py   the debug stream's access re-check at every heartbeat

Data access: the gateway reads the registry (registry.read_gateway, registry.read_operator via
api.auth) and writes only `execution_log`, through execlog.py. That table is call telemetry, not
registry state, so it is not written by an audited workflow (which would put Temporal on the hot path).
"""
