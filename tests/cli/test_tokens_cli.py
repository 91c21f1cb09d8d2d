"""`extctl tokens create|ls|revoke` and the named Actor in `extctl audit`, as a user runs them
(subprocess) against the real operator API, Temporal and an in-process worker."""

from __future__ import annotations

import uuid

import pytest

# The operator-API fixtures, and the extctl runner of the operator CLI tests.
from tests.api.conftest import data_dir, keyring, settings, temporal_client, worker  # noqa: F401
from tests.cli.test_operator_cli import Extctl, api_url, extctl  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.timeout(150)]


@pytest.mark.usefixtures("worker")
async def test_create_ls_revoke_and_the_actor_in_audit(extctl: Extctl) -> None:  # noqa: F811
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    alice = f"alice-{uuid.uuid4().hex[:6]}"
    made = (await extctl("--json", "tokens", "create", "--scope", "admin", "--name", alice)).json()
    assert made["identity"] == alice
    as_alice = Extctl(env={**extctl.env, "EXT_ADMIN_TOKEN": made["token"]}, cwd=extctl.cwd)
    # CONTRACT.md's form, without --name: a derived name.
    plain = (await as_alice("--json", "tokens", "create", "--tenant", tenant, "--scope", "ext:read")).json()
    assert plain["name"].startswith("token-") and plain["identity"] == f"{tenant}/{plain['name']}"

    listed = (await extctl("--json", "tokens", "ls", "--tenant", tenant)).json()
    assert [(t["token_id"], t["status"]) for t in listed] == [(plain["token_id"], "active")]
    human = (await extctl("tokens", "ls", "--tenant", tenant)).stdout
    header, line = human.splitlines()
    assert header.split() == ["ID", "IDENTITY", "TENANT", "STATUS", "SCOPES", "CREATED", "EXPIRES"]
    assert plain["token_id"] in line and plain["identity"] in line and "active" in line
    assert plain["token"] not in human

    out = await as_alice("tokens", "revoke", plain["token_id"], "--reason", "rotated")
    assert f"revoked {plain['token_id']} ({plain['identity']})" in out.stdout
    again = (await as_alice("--json", "tokens", "revoke", plain["token_id"])).json()
    assert again["already_revoked"] is True
    assert (await extctl("--json", "tokens", "ls", "--tenant", tenant)).json()[0]["status"] == "revoked"
    unknown = await extctl("tokens", "revoke", str(uuid.uuid4()), ok=False)
    assert unknown.code != 0 and unknown.stderr.startswith("error: token_not_found: "), unknown.stderr
    bad = await extctl("tokens", "create", "--scope", "admin", "--name", "Not A Name", ok=False)
    assert bad.code != 0 and bad.stderr.startswith("error: invalid_request: "), bad.stderr

    audit = (await extctl("--json", "audit", "--tenant", tenant)).json()
    assert sorted((e["action"], e["actor"]) for e in audit) == [
        ("token.create", alice),
        ("token.revoke", alice),
        ("token.revoke", alice),
    ]
    shown = (await extctl("audit", "--tenant", tenant)).stdout
    assert f"  {alice}  " in shown and made["token"] not in shown
