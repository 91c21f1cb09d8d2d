"""Determinism: every workflow's recorded history replays with the current code (STYLE.md 7).

`test_live_histories_replay` runs every workflow type once and replays what it recorded; with
EXT_CAPTURE_HISTORIES=1 it also (re)writes tests/workflows/histories/*.json. Those committed histories
are replayed by `test_committed_history_replays`, so a change of workflow logic without
`workflow.patched` fails here before it breaks running workflows. Histories recorded before a patch
(PRE_PATCH) are never rewritten: they keep the old branch covered; the patched branch gets a label of
its own.

Nothing can be left out: every workflow type registered in the worker and every install operation
(`install_change_<operation>`) needs a committed history, and tests/workflows/histories/SOURCES.json
records the digest of the workflow code the histories were captured from (history_guard.py), so a
change of workflow code fails `test_histories_were_captured_from_the_current_workflow_code` until
they are captured again (capture mode rewrites SOURCES.json).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.worker import Replayer

from bundles.blobstore import FilesystemBlobStore
from core.codec import data_converter, seal_secrets
from core.crypto import Keyring
from schema.payloads.install import InstallOperation as Op
from schema.payloads.namespaces import (
    RegisterNamespaceInput,
    RegisterNamespaceResult,
    RemoveNamespaceInput,
    RemoveNamespaceResult,
)
from schema.payloads.rollout import RolloutControl, RolloutInput, RolloutPhase, RolloutStatus
from schema.payloads.rotation import RotateMasterKeyInput, RotateMasterKeyResult
from schema.payloads.schedules import (
    RunOutcome,
    ScheduleAction,
    ScheduleControlInput,
    ScheduleControlResult,
    ScheduledRunInput,
    ScheduledRunResult,
    ScheduleTrigger,
)
from schema.payloads.tokens import (
    CREATE_TOKEN_WORKFLOW,
    REVOKE_TOKEN_WORKFLOW,
    CreateTokenInput,
    CreateTokenResult,
    RevokeTokenInput,
    RevokeTokenResult,
)
from schema.payloads.trust import AddTrustKeyInput, AddTrustKeyResult, RevokeKeyInput, RevokeKeyResult
from schema.temporal import (
    ROLLOUT_ABORT_UPDATE,
    ROLLOUT_STATUS_QUERY,
    WorkflowType,
    install_change_workflow_id,
    install_quarantine_workflow_id,
    install_workflow_id,
    manual_run_workflow_id,
    publish_workflow_id,
    revoke_key_workflow_id,
    rollout_workflow_id,
    schedule_control_workflow_id,
    sign_verify_workflow_id,
    token_revoke_workflow_id,
    token_workflow_id,
    trust_key_workflow_id,
)
from tests.workflows.helpers import (
    HISTORIES,
    Installs,
    Signer,
    build_bundle,
    eventually,
    fixed_keyring,
    manifest,
    publish_version,
    stage,
    unique_name,
)
from tests.workflows.history_guard import (
    CAPTURE_HINT,
    committed_histories,
    history_labels_by_type,
    patch_ids,
    stale_sources,
    workflow_type_name,
    write_sources,
)
from workflows.install_change import InstallChangeWorkflow
from workflows.worker import WORKFLOWS

EXPECTED = {
    "publish",
    "publish_rejected",
    "sign_verify",
    "add_trust_key",
    "install",
    "install_change_install",
    "install_change_set_secrets",
    "install_change_rollback",
    "rotate_master_key",
    "revoke_key",
    # Recorded with the patches of issue 12 (ContentHash, per-install quarantine children, namespaces).
    "install_content_hash",
    "install_change_upgrade",
    "install_change_uninstall",
    "revoke_key_quarantine_children",
    "install_quarantine",
    "publish_namespace_check",
    "register_namespace",
    "remove_namespace",
    "create_token",
    "revoke_token",
    # Issue 13: one history per install operation (install_change_<operation>).
    "install_change_disable",
    "install_change_enable",
    "install_change_set_limits",
    "install_change_set_config",
    "install_change_set_debug",
    # Issue 13 item 2: a fleet rollout (one install, one wave), and one aborted mid-soak (rolled back).
    "rollout",
    "rollout_aborted",
    # Issue 13 item 1: an install with manifest schedules (the Schedule sync step of its changes), a
    # scheduled run (skipped: the install is disabled), an operator's pause, and the quarantine child
    # with its sync step.
    "install_change_install_schedules",
    "install_change_uninstall_schedules",
    "scheduled_run",
    "schedule_control",
    "install_quarantine_schedules",
}
# label -> the patch its committed history predates (capturing again would lose the old branch).
PRE_PATCH = {
    "install": "install-entity-content-hash",
    "install_change_install": "install-change-content-hash",
    "install_change_set_secrets": "install-change-content-hash",
    "install_change_rollback": "install-change-content-hash",
    "revoke_key": "revoke-key-quarantine-children",
    "publish": "namespace-ownership",
    "install_quarantine": "quarantine-schedules",
}


def replayer() -> Replayer:
    # Version 2 too: histories recorded by a rotated worker are sealed with it.
    return Replayer(workflows=WORKFLOWS, data_converter=data_converter(fixed_keyring(1, 2)))


@pytest.mark.integration
@pytest.mark.temporal
@pytest.mark.timeout(120)
async def test_live_histories_replay(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    keyring: Keyring,
) -> None:
    name = unique_name()
    ids: dict[str, str] = {}
    v1 = await publish_version(client, task_queue, store, signer, tmp_path, manifest(name, "1.0.0"))
    await publish_version(client, task_queue, store, signer, tmp_path, manifest(name, "1.1.0"))
    ids["publish"] = publish_workflow_id(v1.content_hash)
    # The same run under the name of the history first recorded with the namespace check and claim.
    ids["publish_namespace_check"] = ids["publish"]
    ids["sign_verify"] = sign_verify_workflow_id(v1.content_hash)
    rejected = stage(store, build_bundle(tmp_path, manifest(unique_name())), Signer("acme"))
    with pytest.raises(WorkflowFailureError):
        await client.execute_workflow(
            WorkflowType.PUBLISH,
            rejected.publish_input(),
            id=publish_workflow_id(rejected.content_hash),
            task_queue=task_queue,
        )
    ids["publish_rejected"] = publish_workflow_id(rejected.content_hash)
    newcomer = Signer("initech")
    await client.execute_workflow(
        WorkflowType.ADD_TRUST_KEY,
        AddTrustKeyInput(key_id=newcomer.key_id, publisher="initech", public_key_pem=newcomer.pem),
        id=trust_key_workflow_id(newcomer.key_id),
        task_queue=task_queue,
        result_type=AddTrustKeyResult,
    )
    ids["add_trust_key"] = trust_key_workflow_id(newcomer.key_id)
    await installs.apply(name, Op.INSTALL, version="1.0.0", request_id="r-install", config={})
    await installs.apply(name, Op.UPGRADE, version="1.1.0", request_id="r-upgrade")
    await installs.apply(
        name, Op.SET_SECRETS, secrets=seal_secrets(keyring, {"K": "v"}), request_id="r-secrets"
    )
    await installs.apply(name, Op.ROLLBACK, request_id="r-rollback")
    # Every other operation once, before the revocation below quarantines the install.
    await installs.apply(name, Op.DISABLE, request_id="r-disable")
    await installs.apply(name, Op.ENABLE, request_id="r-enable")
    await installs.apply(name, Op.SET_LIMITS, rate_limit_rps=5.0, rate_limit_burst=10, request_id="r-limits")
    await installs.apply(name, Op.SET_CONFIG, config={"greeting": "yo"}, request_id="r-config")
    await installs.apply(name, Op.SET_DEBUG, debug_enabled=True, request_id="r-debug")
    t = installs.tenant
    # A rollout of 1.1.0 over this tenant's install (back at 1.0.0 after the rollback), one wave.
    ids["rollout"] = rollout_workflow_id(f"replay-{uuid.uuid4().hex[:8]}")
    rollout = await client.execute_workflow(
        WorkflowType.ROLLOUT,
        RolloutInput(rollout_id="replay", extension=name, version="1.1.0", tenants=[t], soak_seconds=0.1),
        id=ids["rollout"],
        task_queue=task_queue,
        result_type=RolloutStatus,
    )
    assert rollout.state is RolloutPhase.COMPLETED and rollout.upgraded == 1
    # Back to 1.0.0 as a rollout, aborted while it soaks: the abort Update ends the timer and the
    # install is rolled back to 1.1.0.
    ids["rollout_aborted"] = rollout_workflow_id(f"replay-abort-{uuid.uuid4().hex[:8]}")
    aborting = await client.start_workflow(
        WorkflowType.ROLLOUT,
        RolloutInput(
            rollout_id="replay-abort", extension=name, version="1.0.0", tenants=[t], soak_seconds=600
        ),
        id=ids["rollout_aborted"],
        task_queue=task_queue,
        result_type=RolloutStatus,
    )

    async def soaking() -> bool:
        s = await aborting.query(ROLLOUT_STATUS_QUERY, result_type=RolloutStatus)
        return s.state is RolloutPhase.SOAKING

    await eventually(soaking, what="rollout soaking")
    await aborting.execute_update(
        ROLLOUT_ABORT_UPDATE, RolloutControl(actor="test"), result_type=RolloutStatus
    )
    aborted = await aborting.result()
    assert (aborted.state, aborted.rolled_back) == (RolloutPhase.ABORTED, 1)
    ids["install"] = install_workflow_id(t, name)
    ids["install_change_install"] = install_change_workflow_id(t, name, "r-install")
    ids["install_change_set_secrets"] = install_change_workflow_id(t, name, "r-secrets")
    ids["install_change_rollback"] = install_change_workflow_id(t, name, "r-rollback")
    for op, request_id in [
        (Op.DISABLE, "r-disable"),
        (Op.ENABLE, "r-enable"),
        (Op.SET_LIMITS, "r-limits"),
        (Op.SET_CONFIG, "r-config"),
        (Op.SET_DEBUG, "r-debug"),
    ]:
        ids[f"install_change_{op.value}"] = install_change_workflow_id(t, name, request_id)
    await _schedule_steps(client, task_queue, store, signer, tmp_path, installs, ids)
    rotate_id = f"rotate-master-key/test-{uuid.uuid4().hex[:8]}"
    await client.execute_workflow(
        WorkflowType.ROTATE_MASTER_KEY,
        RotateMasterKeyInput(actor="test"),
        id=rotate_id,
        task_queue=task_queue,
        result_type=RotateMasterKeyResult,
    )
    ids["rotate_master_key"] = rotate_id
    quarantined: RevokeKeyResult = await client.execute_workflow(
        WorkflowType.REVOKE_KEY,
        RevokeKeyInput(key_id=signer.key_id, reason="test"),
        id=revoke_key_workflow_id(signer.key_id),
        task_queue=task_queue,
        result_type=RevokeKeyResult,
    )
    ids["revoke_key"] = ids["revoke_key_quarantine_children"] = revoke_key_workflow_id(signer.key_id)
    assert [q.extension for q in quarantined.quarantined_installs] == [name]
    ids["install_quarantine"] = install_quarantine_workflow_id(
        t, name, signer.key_id, quarantined.quarantined_installs[0].install_id
    )
    ids["install_quarantine_schedules"] = ids["install_quarantine"]
    await installs.apply(name, Op.UNINSTALL, request_id="r-uninstall")
    ids["install_content_hash"] = ids["install"]
    ids["install_change_upgrade"] = install_change_workflow_id(t, name, "r-upgrade")
    ids["install_change_uninstall"] = install_change_workflow_id(t, name, "r-uninstall")
    namespace_steps: list[tuple[str, WorkflowType, object, type]] = [
        (
            "register_namespace",
            WorkflowType.REGISTER_NAMESPACE,
            RegisterNamespaceInput(prefix="com.initech", publisher="initech"),
            RegisterNamespaceResult,
        ),
        (
            "remove_namespace",
            WorkflowType.REMOVE_NAMESPACE,
            RemoveNamespaceInput(prefix="com.initech"),
            RemoveNamespaceResult,
        ),
    ]
    for label, wf_type, inp, out in namespace_steps:
        ids[label] = f"{label}/test-{uuid.uuid4().hex[:8]}"
        await client.execute_workflow(wf_type, inp, id=ids[label], task_queue=task_queue, result_type=out)
    token_id = str(uuid.uuid4())
    await client.execute_workflow(
        CREATE_TOKEN_WORKFLOW,
        CreateTokenInput(
            token_id=token_id,
            token_hash=uuid.uuid4().hex * 2,
            scopes=["ext:read"],
            tenant_id="acme",
            name="ci",
            identity="acme/ci",
            actor="test",
        ),
        id=token_workflow_id(token_id),
        task_queue=task_queue,
        result_type=CreateTokenResult,
    )
    ids["create_token"] = token_workflow_id(token_id)
    await client.execute_workflow(
        REVOKE_TOKEN_WORKFLOW,
        RevokeTokenInput(token_id=token_id, tenant_id="acme", actor="test", reason="test"),
        id=token_revoke_workflow_id(token_id),
        task_queue=task_queue,
        result_type=RevokeTokenResult,
    )
    ids["revoke_token"] = token_revoke_workflow_id(token_id)
    assert set(ids) == EXPECTED

    capture = os.environ.get("EXT_CAPTURE_HISTORIES") == "1"
    for label, wf_id in sorted(ids.items()):
        history = await client.get_workflow_handle(wf_id).fetch_history()
        result = await replayer().replay_workflow(history)
        assert result.replay_failure is None, label
        if capture and label not in PRE_PATCH:
            path = HISTORIES / f"{label}.json"
            fresh = history.to_json()
            if path.exists():
                # Overwriting a history that lacks a patch the code now takes loses its old branch.
                lost = patch_ids(fresh) - patch_ids(path.read_text())
                assert not lost, (
                    f"{label}: the committed history predates {sorted(lost)}; list it in PRE_PATCH and "
                    "record the patched branch under a new label"
                )
            HISTORIES.mkdir(parents=True, exist_ok=True)
            path.write_text(fresh)
    if capture:
        write_sources(WORKFLOWS)


async def _schedule_steps(
    client: Client,
    task_queue: str,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    ids: dict[str, str],
) -> None:
    """An extension with a manifest schedule: install, disable, a (skipped) run, a pause, uninstall.
    Uninstalled before the revocation, so the quarantine above stays the one of `name`."""
    sname, t = unique_name(), installs.tenant
    doc = manifest(
        sname,
        "1.0.0",
        api={"endpoints": [{"method": "POST", "path": "/sync"}]},
        schedules=[
            {"name": "nightly", "cron": "0 3 * * *", "endpoint": "POST /sync", "body": {"full": True}}
        ],
    )
    await publish_version(client, task_queue, store, signer, tmp_path, doc)
    await installs.apply(sname, Op.INSTALL, version="1.0.0", request_id="r-sched-install")
    await installs.apply(sname, Op.DISABLE, request_id="r-sched-disable")
    ids["scheduled_run"] = manual_run_workflow_id(t, sname, "nightly", "replay")
    run = await client.execute_workflow(
        WorkflowType.SCHEDULED_RUN,
        ScheduledRunInput(tenant_id=t, extension=sname, schedule="nightly", trigger=ScheduleTrigger.MANUAL),
        id=ids["scheduled_run"],
        task_queue=task_queue,
        result_type=ScheduledRunResult,
    )
    assert run.outcome == RunOutcome.SKIPPED
    ids["schedule_control"] = schedule_control_workflow_id(t, sname, "nightly", "replay")
    await client.execute_workflow(
        WorkflowType.SCHEDULE_CONTROL,
        ScheduleControlInput(
            tenant_id=t,
            extension=sname,
            schedule="nightly",
            action=ScheduleAction.PAUSE,
            actor="test",
            request_id="replay",
        ),
        id=ids["schedule_control"],
        task_queue=task_queue,
        result_type=ScheduleControlResult,
    )
    await installs.apply(sname, Op.UNINSTALL, request_id="r-sched-uninstall")
    ids["install_change_install_schedules"] = install_change_workflow_id(t, sname, "r-sched-install")
    ids["install_change_uninstall_schedules"] = install_change_workflow_id(t, sname, "r-sched-uninstall")


def test_every_workflow_has_a_committed_history() -> None:
    assert {p.stem for p in committed_histories()} >= EXPECTED


def test_every_registered_workflow_type_has_a_committed_history() -> None:
    recorded = history_labels_by_type()
    missing = sorted(workflow_type_name(cls) for cls in WORKFLOWS if workflow_type_name(cls) not in recorded)
    assert not missing, (
        f"workflow types registered in workflows/worker.py without a committed history: {missing}; "
        f"run each in test_live_histories_replay (a label in EXPECTED) and {CAPTURE_HINT}"
    )


def test_every_install_operation_has_a_committed_history() -> None:
    # The operation is in the (encrypted) input, so the label says which one a history records.
    recorded = set(history_labels_by_type().get(workflow_type_name(InstallChangeWorkflow), []))
    missing = sorted({f"install_change_{op.value}" for op in Op} - recorded)
    assert not missing, (
        f"install operations without a committed InstallChange history: {missing}; apply each in "
        f"test_live_histories_replay under that label and {CAPTURE_HINT}"
    )


def test_histories_were_captured_from_the_current_workflow_code() -> None:
    problems = stale_sources(WORKFLOWS)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", committed_histories(), ids=lambda p: p.stem)
async def test_committed_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await replayer().replay_workflow(history)
    assert result.replay_failure is None
