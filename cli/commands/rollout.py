"""`extctl rollout start|status|pause|resume|abort`: fleet rollouts over the operator API
(`/v1/rollouts`, docs/operator.md "Fleet rollouts")."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.client import call, split_ref
from cli.output import emit, fail
from schema.payloads.rollout import (
    DEFAULT_MAX_ERROR_RATE_INCREASE,
    DEFAULT_MAX_P99_RATIO,
    DEFAULT_MIN_CALLS,
    DEFAULT_SOAK_SECONDS,
    DEFAULT_WAVES,
)

app = typer.Typer(
    help="Roll a version out to many installs in waves, with automatic rollback.", no_args_is_help=True
)

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `5m` or `1h` in seconds."""
    t = text.strip().lower()
    unit = _UNITS.get(t[-1:], 0.0)
    number = t[:-1] if unit else t
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        fail("invalid_request", f"--soak {text!r} is not a duration (e.g. 60s, 5m, 1h)")
    if value < 0:
        fail("invalid_request", "--soak must not be negative")
    return value


def summary(out: dict[str, Any]) -> str:
    lines = [
        f"rollout {out['rollout_id']}: {out['extension']}@{out['version']} {out['state']}"
        + (" (paused)" if out.get("paused") and out["state"] != "paused" else ""),
        f"  wave {out['wave']}/{out['waves_total']}, installs {out['installs_total']}: "
        f"{out['upgraded']} upgraded, {out['rolled_back']} rolled back, {out['failed']} failed",
    ]
    if out.get("reason"):
        lines.append(f"  reason: {out['reason']}")
    for w in out.get("waves", []):
        m = w.get("metrics") or {}
        verdict = f"regression: {w['regression']}" if w.get("regression") else "ok"
        new, old = (
            f"{m.get(f'{k}_calls', 0)} calls ({m.get(f'{k}_errors', 0)} errors, "
            f"p99 {m.get(f'{k}_p99_ms', 0):.1f} ms)"
            for k in ("new", "old")
        )
        lines.append(f"  wave {w['wave']}: {w['installs']} installs, new {new} vs old {old}: {verdict}")
    lines.append(f"  {out['ui_url']}")
    return "\n".join(lines)


@app.command("start")
def start(
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION")],
    tenants: Annotated[str | None, typer.Option("--tenants", help="comma-separated tenant ids")] = None,
    all_tenants: Annotated[bool, typer.Option("--all", help="every tenant with an install")] = False,
    waves: Annotated[
        str, typer.Option("--waves", help="cumulative wave sizes: counts or percentages, e.g. 1,10,50%")
    ] = ",".join(DEFAULT_WAVES),
    soak: Annotated[
        str, typer.Option("--soak", help="soak per wave, e.g. 60s, 5m")
    ] = f"{DEFAULT_SOAK_SECONDS:g}s",
    max_error_rate_increase: Annotated[
        float, typer.Option("--max-error-rate-increase", help="absolute, 0.02 = two percentage points")
    ] = DEFAULT_MAX_ERROR_RATE_INCREASE,
    max_p99_ratio: Annotated[float, typer.Option("--max-p99-ratio")] = DEFAULT_MAX_P99_RATIO,
    min_calls: Annotated[
        int, typer.Option("--min-calls", help="fewer new-version calls in a wave: no verdict, it passes")
    ] = DEFAULT_MIN_CALLS,
    idempotency_key: Annotated[
        str | None, typer.Option("--id", help="rollout id (a retry with the same id attaches to it)")
    ] = None,
) -> None:
    """Start a rollout of NAME@VERSION over the installs of --tenants (or --all)."""
    name, version = split_ref(ref)
    if all_tenants == (tenants is not None):
        fail("invalid_request", "give --tenants a,b,... or --all (one of them)")
    body: dict[str, Any] = {
        "extension": name,
        "version": version,
        "waves": [w.strip() for w in waves.split(",") if w.strip()],
        "soak_seconds": parse_duration(soak),
        "max_error_rate_increase": max_error_rate_increase,
        "max_p99_ratio": max_p99_ratio,
        "min_calls": min_calls,
    }
    if all_tenants:
        body["all"] = True
    else:
        body["tenants"] = [t.strip() for t in (tenants or "").split(",") if t.strip()]
    headers = {"idempotency-key": idempotency_key} if idempotency_key else None
    out = call("POST", "/v1/rollouts", json_body=body, headers=headers, spinner="starting rollout")
    emit(out, human=f"rollout {out['rollout_id']} started ({out['workflow_id']})\n  {out['ui_url']}")


@app.command("status")
def status(
    rollout_id: Annotated[str, typer.Argument(metavar="ID")],
    outcomes: Annotated[bool, typer.Option("--outcomes", help="every install's outcome")] = False,
) -> None:
    """State, waves and their metrics."""
    out = call("GET", f"/v1/rollouts/{rollout_id}", params={"outcomes": "true"} if outcomes else None)
    human = summary(out)
    if outcomes:
        human += "".join(
            f"\n  {o['tenant_id']}: wave {o['wave'] + 1} {o['result']}"
            + (f" ({o['error']})" if o["error"] else "")
            for o in out.get("outcomes") or []
        )
    emit(out, human=human)


def _control(action: str, rollout_id: str, body: dict[str, Any]) -> None:
    out = call("POST", f"/v1/rollouts/{rollout_id}/{action}", json_body=body, spinner=f"{action} rollout")
    emit(out, human=summary(out))


@app.command("pause")
def pause(
    rollout_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    """Hold before the next wave."""
    _control("pause", rollout_id, {"reason": reason})


@app.command("resume")
def resume(
    rollout_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    _control("resume", rollout_id, {"reason": reason})


@app.command("abort")
def abort(
    rollout_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason")] = "",
    keep: Annotated[bool, typer.Option("--keep", help="leave upgraded installs at the new version")] = False,
) -> None:
    """Stop now and roll back what the rollout upgraded (unless --keep)."""
    _control("abort", rollout_id, {"reason": reason, "rollback": not keep})
