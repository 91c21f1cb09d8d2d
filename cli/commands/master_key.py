"""`extctl master-key rotate`: re-wrap every install data key under the newest master key.

Not part of `extctl keys`: those are local Ed25519 signing keys, handled offline, while the master
keyring (`EXT_MASTER_KEYS`) lives in the worker and the API, and rotating it is a workflow.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import call
from cli.output import emit

app = typer.Typer(
    help="The master keyring (EXT_MASTER_KEYS) that wraps every install's data key.", no_args_is_help=True
)


@app.command("rotate")
def rotate(
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="return at once with the operation id to follow")
    ] = False,
) -> None:
    """Re-wrap every data key under the newest version of the workers' keyring (global admin only).

    It does not generate a key: add the new version to EXT_MASTER_KEYS everywhere first.

    A rotation already running is joined, not repeated.
    """
    out = call(
        "POST",
        "/v1/master-key/rotate",
        params={"wait": "false"} if no_wait else None,
        spinner="re-wrapping data keys",
    )
    if "operation_id" in out:
        op = out["operation_id"]
        emit(out, human=f"rotation continues in workflow {op}\n  {out['ui_url']}\n  GET /v1/operations/{op}")
        return
    emit(
        out,
        human="\n".join(
            [
                f"data keys under master key version {out['target_version']}",
                f"  target version  {out['target_version']}",
                f"  re-wrapped      {out['rewrapped']}",
                f"  workflow id     {out['workflow_id']}",
                f"  temporal ui     {out['ui_url']}",
            ]
        ),
    )
