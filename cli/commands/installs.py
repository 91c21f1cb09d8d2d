"""Install lifecycle commands (top level): install, upgrade, rollback, enable, disable, uninstall, ls,
status. Each change is one update of the install entity workflow behind the operator API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.client import call, parse_pairs, split_ref
from cli.output import emit

app = typer.Typer()

Tenant = Annotated[str, typer.Option("--tenant", help="tenant id")]
Name = Annotated[str, typer.Argument(help="extension name (manifest `name`)")]
_ITEM = "a capability (cap:...) or an egress host (repeatable)"
Accept = Annotated[
    list[str] | None,
    typer.Option("--accept", help=f"consent to what the target version adds: {_ITEM}"),
]
Deny = Annotated[list[str] | None, typer.Option("--deny", help=f"do not grant {_ITEM}")]
DropSchedule = Annotated[
    list[str] | None,
    typer.Option(
        "--drop-schedule",
        metavar="SCHEDULE",
        help="agree to lose this schedule: the target no longer declares its endpoint (repeatable)",
    ),
]


def grant_items(items: list[str] | None) -> dict[str, list[str]] | None:
    """`--accept`/`--deny` values as the API's {capabilities, egress}: `cap:` names a capability,
    anything else an egress host. None when the option was not given."""
    if not items:
        return None
    caps = [i for i in items if i.startswith("cap:")]
    return {"capabilities": caps, "egress": [i for i in items if not i.startswith("cap:")]}


def _consent(body: dict[str, Any], accept: list[str] | None, deny: list[str] | None) -> dict[str, Any]:
    for field, items in (("accept", accept), ("deny", deny)):
        grant = grant_items(items)
        if grant is not None:
            body[field] = grant
    return body


def _dropping(body: dict[str, Any], drop: list[str] | None) -> dict[str, Any]:
    if drop:
        body["drop_schedules"] = drop
    return body


def _base(tenant: str, name: str) -> str:
    return f"/v1/tenants/{tenant}/installs/{name}"


def change_summary(out: dict[str, Any]) -> str:
    """One line for a change result, e.g. `acme: com.acme.hello 1.0.0 -> 1.1.0 active (rev 3)`."""
    version = out["version"]
    if out["previous_version"] and out["previous_version"] != version:
        # An uninstall has no version left: name the one it removed, not "1.1.0 -> ".
        version = f"{out['previous_version']} -> {version}" if version else out["previous_version"]
    head = f"{out['tenant_id']}: {out['extension']} {version} {out['status']} (rev {out['revision']})"
    if not out["changed"]:
        head += " (no change)"
    lines = [head]
    requested, granted = out.get("requested"), out.get("granted")
    if requested and granted:
        # What the version asks for, and what of it the install is not granted (operator denials).
        for what, label in (("capabilities", "capabilities"), ("egress", "egress hosts")):
            kept = set(requested[what]) - set(granted[what])
            shown = ", ".join(requested[what]) or "-"
            lines.append(
                f"  {label:<13} {shown}" + (f"  (not granted: {', '.join(sorted(kept))})" if kept else "")
            )
    lines += [f"  workflow {out['workflow_id']}", f"  {out['ui_url']}"]
    return "\n".join(lines)


def _emit_change(out: dict[str, Any]) -> None:
    emit(out, human=change_summary(out))


@app.command("install")
def install(
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION")],
    tenant: Tenant,
    config: Annotated[list[str] | None, typer.Option("--config", help="k=v (repeatable)")] = None,
    secret: Annotated[list[str] | None, typer.Option("--secret", help="k=v (repeatable)")] = None,
    deny: Deny = None,
) -> None:
    """Install NAME@VERSION in a tenant. Again at the installed version, what is given replaces the
    install's config, secret set or denials; what is omitted stays (nothing given: a no-op)."""
    name, version = split_ref(ref)
    body: dict[str, Any] = _consent({"extension": name, "version": version}, None, deny)
    if config:
        body["config"] = parse_pairs(config, what="--config", typed=True)
    if secret:
        body["secrets"] = parse_pairs(secret, what="--secret")
    _emit_change(call("POST", f"/v1/tenants/{tenant}/installs", json_body=body, spinner=f"installing {ref}"))


@app.command("upgrade")
def upgrade(
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION")],
    tenant: Tenant,
    accept: Accept = None,
    deny: Deny = None,
    drop_schedule: DropSchedule = None,
) -> None:
    """Move the install to another version. If it asks for capabilities or egress hosts the install
    is not granted, the upgrade is refused (consent_required, naming them) until each is --accept-ed
    or --deny-ed. If it no longer declares the endpoint of a schedule of the install, it is refused
    (schedule_endpoint_dropped, naming them) until each is named with --drop-schedule."""
    name, version = split_ref(ref)
    out = call(
        "POST",
        f"{_base(tenant, name)}/upgrade",
        json_body=_dropping(_consent({"version": version}, accept, deny), drop_schedule),
        spinner=f"upgrading to {ref}",
    )
    _emit_change(out)


@app.command("rollback")
def rollback(
    name: Name,
    tenant: Tenant,
    to: Annotated[str | None, typer.Option("--to", help="version (default: the previous one)")] = None,
    accept: Accept = None,
    deny: Deny = None,
    drop_schedule: DropSchedule = None,
) -> None:
    """Back to the previous version in the install's history (or the one named by --to, which the
    install must have run before). Consent and --drop-schedule as for upgrade."""
    body = _dropping(_consent({"version": to}, accept, deny), drop_schedule)
    out = call("POST", f"{_base(tenant, name)}/rollback", json_body=body, spinner="rolling back")
    _emit_change(out)


@app.command("enable")
def enable(name: Name, tenant: Tenant) -> None:
    """Enable a disabled install."""
    _emit_change(call("POST", f"{_base(tenant, name)}/enable", spinner="enabling"))


@app.command("disable")
def disable(name: Name, tenant: Tenant) -> None:
    """Disable an install (the gateway stops routing to it)."""
    _emit_change(call("POST", f"{_base(tenant, name)}/disable", spinner="disabling"))


@app.command("uninstall")
def uninstall(name: Name, tenant: Tenant) -> None:
    """Remove the install from the tenant."""
    _emit_change(call("DELETE", _base(tenant, name), spinner="uninstalling"))


def _install_line(i: dict[str, Any]) -> str:
    return f"{i['tenant_id']}  {i['extension']}  {i['version']}  {i['status']}  rev {i['revision']}"


@app.command("ls")
def ls(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's installs")] = None,
) -> None:
    """Published extensions and installs (of one tenant with --tenant)."""
    installs = call("GET", "/v1/installs", params={"tenant": tenant})
    if tenant is not None:
        emit({"installs": installs}, human="\n".join(map(_install_line, installs)) or "no installs")
        return
    extensions = call("GET", "/v1/extensions")
    lines = ["EXTENSIONS"] + [
        f"  {e['name']}  ({e['publisher']})  {', '.join(e['versions']) or '-'}" for e in extensions
    ]
    lines += ["INSTALLS"] + [f"  {_install_line(i)}" for i in installs]
    emit({"extensions": extensions, "installs": installs}, human="\n".join(lines))


@app.command("status")
def status(name: Name, tenant: Tenant) -> None:
    """The install of NAME in a tenant: version, status, config, limits, debug flag, history."""
    out = call("GET", _base(tenant, name))
    limits = f"{out['rate_limit_rps'] or 'default'} rps, burst {out['rate_limit_burst'] or 'default'}"
    lines = [
        f"{out['extension']} in {out['tenant_id']}: {out['version']} {out['status']} (rev {out['revision']})",
        f"  content hash     {out['content_hash']}",
        f"  version status   {out['version_status']}",
        f"  capabilities     {', '.join(out['granted_capabilities']) or '-'}",
        f"  egress hosts     {', '.join(out.get('granted_egress') or []) or '-'}",
        f"  config v{out['config_version']}        {out['config']}",
        f"  secrets version  {out['secrets_version']}",
        f"  rate limit       {limits}",
        f"  debug flag       {'on' if out['debug_enabled'] else 'off'}",
        f"  workflow         {out['workflow_id']}  {out['ui_url']}",
        "  history",
    ]
    lines += [
        f"    rev {h['revision']}  {h['operation']}  {h['from_version'] or '-'} -> {h['to_version'] or '-'}"
        f"  {h['at']}  {h['workflow_id']}"
        for h in out.get("history") or []
    ]
    emit(out, human="\n".join(lines))
