"""`extctl dev up | status | down`: the local stack (see cli/devstack)."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.devstack.procs import StackError
from cli.devstack.stack import Stack
from cli.output import emit, fail
from core.errors import ExtplaneError

app = typer.Typer(
    help="Run the local stack: Temporal (with UI), Postgres, Redis and extplane's services.",
    no_args_is_help=True,
)

ROOT_OPTION = typer.Option(
    Path(".extplane"), "--root", help="where the stack keeps its data, logs and dev.env"
)


@app.command("up")
def up(
    root: Path = ROOT_OPTION,
    apps: bool = typer.Option(True, "--apps/--no-apps", help="also start worker, runner, gateway, API"),
) -> None:
    """Start (or reuse) every service, apply migrations, write .extplane/dev.env. Idempotent."""
    try:
        info = Stack(root, with_apps=apps).up()
    except (StackError, ExtplaneError, OSError) as exc:
        fail("dev_stack_failed", str(exc))
    data = {
        "env_file": str(root / "dev.env"),
        "started": info.started_now,
        "seconds": round(info.seconds, 2),
        "services": {k: {"url": v.url, "managed": v.managed} for k, v in info.services.items()},
        "temporal_ui": info.env["EXT_TEMPORAL_UI_URL"],
        "gateway": info.env["EXT_GATEWAY_URL"],
        "api": info.env["EXT_API_URL"],
    }
    lines = [
        f"dev stack up in {info.seconds:.1f}s "
        f"(started: {', '.join(info.started_now) or 'nothing, all reused'})"
    ]
    for name, svc in sorted(info.services.items()):
        lines.append(f"  {name:<9} {svc.url}{'' if svc.managed else '  (external)'}")
    lines.append(f"  temporal UI {info.env['EXT_TEMPORAL_UI_URL']}")
    lines.append(f"  env file  {root / 'dev.env'}")
    emit(data, human="\n".join(lines))


@app.command("status")
def status(root: Path = ROOT_OPTION) -> None:
    """Report each component: url, who started it, healthy or not."""
    st = Stack(root).status()
    if not st:
        emit({}, human="dev stack: not started (run `extctl dev up`)")
        return
    lines = [
        f"  {name:<9} {'up  ' if s['healthy'] else 'DOWN'} {s['url']}{'' if s['managed'] else '  (external)'}"
        for name, s in sorted(st.items())
    ]
    emit(st, human="dev stack:\n" + "\n".join(lines))
    if not all(s["healthy"] for s in st.values()):
        raise typer.Exit(1)


@app.command("down")
def down(root: Path = ROOT_OPTION) -> None:
    """Stop everything `dev up` started; services from EXT_* URLs are left alone."""
    stopped = Stack(root).down()
    emit({"stopped": stopped}, human=f"stopped: {', '.join(stopped) or 'nothing'}")
