"""`extctl schedules ls|run|pause|resume`: the scheduled invocations of a tenant's installs over the
operator API (`/v1/tenants/{tenant}/schedules`, `.../installs/{name}/schedules/{schedule}/...`;
docs/operator.md "Scheduled invocations").

A schedule is named `EXTENSION/SCHEDULE`: extension names are dotted and never hold '/', schedule
names are slugs, so the first '/' splits them unambiguously.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from cli.client import call
from cli.output import emit, fail

app = typer.Typer(help="Scheduled invocations: list, run now, pause, resume.", no_args_is_help=True)

Tenant = Annotated[str, typer.Option("--tenant", help="tenant id")]
Ref = Annotated[str, typer.Argument(metavar="EXTENSION/SCHEDULE")]
_HEADER = ("EXTENSION", "SCHEDULE", "CRON", "ENDPOINT", "STATE", "NEXT RUN", "LAST RUN")


def split_schedule(ref: str) -> tuple[str, str]:
    """`EXTENSION/SCHEDULE` -> (extension, schedule)."""
    extension, sep, schedule = ref.partition("/")
    if not sep or not extension or not schedule or "/" in schedule:
        fail("invalid_request", f"expected EXTENSION/SCHEDULE (e.g. com.acme.reports/nightly), got {ref!r}")
    return extension, schedule


def _when(text: str | None) -> str:
    """An API date-time to the minute, UTC (`2026-12-04 03:00Z`)."""
    return f"{text[:16].replace('T', ' ')}Z" if text else "-"


def _cells(s: dict[str, Any]) -> tuple[str, ...]:
    run = s.get("last_run")
    last = f"{_when(run['at'])} {run['outcome']} ({run['status']})" if run else "-"
    state = s["state"]
    if state == "paused" and s.get("note"):
        state += f" ({s['note']})"
    return (s["extension"], s["name"], s["cron"], s["endpoint"], state, _when(s.get("next_run_at")), last)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [_HEADER, *(_cells(s) for s in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _base(tenant: str, extension: str, schedule: str) -> str:
    t, e, s = (quote(v, safe="") for v in (tenant, extension, schedule))
    return f"/v1/tenants/{t}/installs/{e}/schedules/{s}"


@app.command("ls")
def ls(
    tenant: Tenant,
    extension: Annotated[str | None, typer.Argument(metavar="[EXTENSION]", help="only its schedules")] = None,
) -> None:
    """The schedules of the tenant's installs: cron, endpoint, state, next and last run (UTC).

    STATE is active, paused (by an operator, with the note), paused_install_inactive (the install is
    disabled or quarantined) or missing (its Temporal Schedule is not synced yet)."""
    rows = call("GET", f"/v1/tenants/{quote(tenant, safe='')}/schedules", params={"extension": extension})
    emit(rows, human=table(rows) if rows else "no schedules")


def run_summary(out: dict[str, Any]) -> str:
    head = f"{out['extension']}/{out['schedule']}: {out['outcome']}"
    if out["outcome"] == "skipped":
        head += f" ({out['reason']})"
    else:
        head += f", status {out['status']} in {out['duration_ms']:.1f} ms (version {out['version']})"
    lines = [head, f"  request {out['request_id']}", f"  workflow {out['workflow_id']}", f"  {out['ui_url']}"]
    if out.get("body_preview"):
        lines.insert(1, f"  body {out['body_preview'][:200]}")
    return "\n".join(lines)


@app.command("run")
def run(
    ref: Ref,
    tenant: Tenant,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="start the run and print its workflow")] = False,
) -> None:
    """Run the schedule's call once now (a failed guest exits non-zero: scheduled_run_failed)."""
    extension, schedule = split_schedule(ref)
    path = f"{_base(tenant, extension, schedule)}/run"
    if no_wait:
        out = call("POST", path, params={"wait": "false"}, spinner="starting run")
        emit(out, human=f"{ref}: run started ({out['workflow_id']})\n  {out['ui_url']}")
        return
    out = call("POST", path, spinner=f"running {ref}")
    emit(out, human=run_summary(out))


def _control_summary(ref: str, out: dict[str, Any]) -> str:
    state = "paused" if out["paused"] else "resumed"
    head = f"{ref}: {state}" + ("" if out["changed"] else " (no change)")
    if out["paused"] and out.get("note"):
        head += f": {out['note']}"
    return f"{head}\n  workflow {out['workflow_id']}\n  {out['ui_url']}"


@app.command("pause")
def pause(
    ref: Ref,
    tenant: Tenant,
    note: Annotated[str, typer.Option("--note", help="why (default: who paused it)")] = "",
) -> None:
    """Pause the schedule; it stays paused across disable and enable of the install until resumed."""
    extension, schedule = split_schedule(ref)
    body = {"note": note} if note else None
    out = call("POST", f"{_base(tenant, extension, schedule)}/pause", json_body=body, spinner="pausing")
    emit(out, human=_control_summary(ref, out))


@app.command("resume")
def resume(ref: Ref, tenant: Tenant) -> None:
    """Resume an operator's pause (refused while the install is disabled: enable it first)."""
    extension, schedule = split_schedule(ref)
    out = call("POST", f"{_base(tenant, extension, schedule)}/resume", spinner="resuming")
    emit(out, human=_control_summary(ref, out))
