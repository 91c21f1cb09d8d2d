"""InstallWorkflow: the entity of one install, id `install/<tenant>/<extension>`.

Why an entity workflow with Updates rather than one workflow per operation with a conflict policy:
  * operations on one install must run one at a time in arrival order. Per-operation workflows with a
    shared id and `WorkflowIDConflictPolicy.FAIL` would turn a concurrent upgrade + rollback into a 409
    for one of them, and `USE_EXISTING` would hand the second caller the first caller's result. An entity
    queues both: each Update waits for the lock and then runs, so both succeed in order;
  * an Update answers synchronously with the change's own result or failure (an API can return 200/409/
    422 at once), and its validator refuses a malformed request before anything enters history;
  * each change still runs as its own child workflow (InstallChangeWorkflow) with Operation and the other
    search attributes, so Temporal UI lists changes one by one. The entity itself carries the
    ExtensionVersion and ContentHash the install is at after its latest change (an uninstall keeps the
    last ones), so `ContentHash = "sha256:…"` also finds the entities of installs running a bundle.
Clients send `INSTALL_APPLY_UPDATE` with update-with-start (`USE_EXISTING`), so the entity is started on
first use; an idle entity finishes after IDLE_TIMEOUT and the next update starts a fresh run.

Invariants:
  * at most one change of an install runs at any time (asyncio.Lock; updates queue in arrival order);
  * a request id is applied once: a repeated Update returns the first result (state.completed, carried
    over continue-as-new), and the child workflow id is derived from the request id;
  * a request id is bound to the fingerprint of the request that first ran under it (state.fingerprints,
    set when that request takes the lock, dropped if its change is refused): the same id with another
    fingerprint is refused with idempotency_key_reused, by the validator when the binding is already
    known and by the handler when it appeared while the request waited for the lock;
  * the run continues as new after `max_changes_per_run` changes or when Temporal suggests it, once every
    handler has finished.
Compensation: none here: each child is one registry transaction plus idempotent follow-ups; a refused
change fails only its Update (ApplicationError with the ErrorCode), never the entity.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from schema.errors import ErrorCode
    from schema.payloads.install import (
        InstallChangeInput,
        InstallChangeResult,
        InstallInput,
        InstallOperation,
        InstallRequest,
        InstallState,
    )
    from schema.temporal import (
        INSTALL_APPLY_UPDATE,
        INSTALL_STATE_QUERY,
        WorkflowType,
        install_change_workflow_id,
    )
    from workflows._common import fail, failure_code, search_attributes, upsert
    from workflows.install_change import InstallChangeWorkflow

IDLE_TIMEOUT = timedelta(days=1)
# Refusing a reused request id in the handler is new logic: histories of older workers returned the
# remembered result there instead (their requests carried no fingerprint, so none differ on replay).
FINGERPRINT_PATCH = "idempotency-fingerprint"
# Upserting ExtensionVersion/ContentHash after a change adds a command older histories do not have.
CONTENT_HASH_PATCH = "install-entity-content-hash"
MAX_CHANGES_PER_RUN = 200
REMEMBERED_REQUESTS = 500

Op = InstallOperation
_NEEDS_VERSION = frozenset({Op.INSTALL, Op.UPGRADE})
_MAY_CARRY_CONFIG = frozenset({Op.INSTALL, Op.SET_CONFIG})
_MAY_CARRY_SECRETS = frozenset({Op.INSTALL, Op.SET_SECRETS})
_MAY_ACCEPT = frozenset({Op.UPGRADE, Op.ROLLBACK})
_MAY_DENY = frozenset({Op.INSTALL, Op.UPGRADE, Op.ROLLBACK})


@workflow.defn(name=WorkflowType.INSTALL)
class InstallWorkflow:
    @workflow.init
    def __init__(self, inp: InstallInput) -> None:
        state = inp.state or InstallState()
        self._tenant = inp.tenant_id
        self._extension = inp.extension
        self._completed = dict(state.completed)
        self._order = list(state.order)
        self._changes = state.changes
        self._fingerprints = dict(state.fingerprints)
        self._run_changes = 0
        self._max_changes = inp.max_changes_per_run or MAX_CHANGES_PER_RUN
        self._activity = 0  # bumped by every finished change; the idle timer restarts on it
        self._lock = asyncio.Lock()
        self._upserted = ("", "")  # (version, content hash) last set as search attributes in this run

    @workflow.run
    async def run(self, inp: InstallInput) -> None:
        upsert(tenant_id=inp.tenant_id, extension_name=inp.extension, operation="lifecycle")
        while True:
            seen = self._activity
            try:
                await workflow.wait_condition(functools.partial(self._woken, seen), timeout=IDLE_TIMEOUT)
            except TimeoutError:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._activity == seen and not self._lock.locked():
                    return  # idle: the next update-with-start begins a new run
            if self._should_continue():
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() and not self._lock.locked()
                )
                workflow.continue_as_new(
                    InstallInput(
                        tenant_id=self._tenant,
                        extension=self._extension,
                        state=self._state(),
                        max_changes_per_run=self._max_changes,
                    )
                )

    def _woken(self, seen: int) -> bool:
        return self._activity != seen or self._should_continue()

    def _should_continue(self) -> bool:
        return self._run_changes >= self._max_changes or workflow.info().is_continue_as_new_suggested()

    def _state(self) -> InstallState:
        return InstallState(
            completed=dict(self._completed),
            order=list(self._order),
            changes=self._changes,
            fingerprints=dict(self._fingerprints),
        )

    @workflow.query(name=INSTALL_STATE_QUERY)
    def state(self) -> InstallState:
        return self._state()

    @workflow.update(name=INSTALL_APPLY_UPDATE)
    async def apply(self, req: InstallRequest) -> InstallChangeResult:
        self._refuse_reuse(req)
        if req.request_id in self._completed:
            return self._completed[req.request_id]
        async with self._lock:
            self._refuse_reuse(req)  # another request with this id may have run while this one waited
            if req.request_id in self._completed:  # the same request was queued twice
                return self._completed[req.request_id]
            if req.fingerprint:
                self._fingerprints[req.request_id] = req.fingerprint
            try:
                result = await workflow.execute_child_workflow(
                    InstallChangeWorkflow.run,
                    InstallChangeInput(tenant_id=self._tenant, extension=self._extension, request=req),
                    id=install_change_workflow_id(self._tenant, self._extension, req.request_id),
                    task_queue=workflow.info().task_queue,
                    search_attributes=search_attributes(
                        tenant_id=self._tenant,
                        extension_name=self._extension,
                        extension_version=req.version,
                        operation=req.operation.value,
                        actor=req.actor,
                    ),
                )
            except ChildWorkflowError as err:
                # A refused change is not remembered (a retry runs again), so its id binds nothing.
                self._fingerprints.pop(req.request_id, None)
                raise fail(*failure_code(err)) from None
            finally:
                self._activity += 1
            self._remember(req.request_id, result)
            self._upsert_version(result)
            return result

    def _upsert_version(self, result: InstallChangeResult) -> None:
        at = (result.version, result.content_hash)
        if result.content_hash and at != self._upserted and workflow.patched(CONTENT_HASH_PATCH):
            upsert(extension_version=result.version, content_hash=result.content_hash)
            self._upserted = at

    @apply.validator
    def validate_apply(self, req: InstallRequest) -> None:
        """Refuse malformed requests before anything is recorded in history."""
        problem = _problem(req)
        if problem:
            raise fail(ErrorCode.INVALID_REQUEST, problem)
        differs = _differs(self._fingerprints.get(req.request_id), req.fingerprint)
        if differs:
            raise fail(ErrorCode.IDEMPOTENCY_KEY_REUSED, _reused_message(differs))

    def _refuse_reuse(self, req: InstallRequest) -> None:
        differs = _differs(self._fingerprints.get(req.request_id), req.fingerprint)
        if differs and workflow.patched(FINGERPRINT_PATCH):
            raise fail(ErrorCode.IDEMPOTENCY_KEY_REUSED, _reused_message(differs))

    def _remember(self, request_id: str, result: InstallChangeResult) -> None:
        self._completed[request_id] = result
        self._order.append(request_id)
        self._changes += 1
        self._run_changes += 1
        while len(self._order) > REMEMBERED_REQUESTS:
            evicted = self._order.pop(0)
            self._completed.pop(evicted, None)
            self._fingerprints.pop(evicted, None)


def _differs(first: dict[str, str] | None, again: dict[str, str]) -> list[str]:
    """The parts (fingerprint keys) in which `again` differs from the request that first used its id; a
    part only one of them sets differs. Nothing differs when either has no fingerprint (older clients
    and histories send none)."""
    if not first or not again:
        return []
    differs = sorted(part for part in first.keys() | again.keys() if first.get(part) != again.get(part))
    # Another operation takes other parts anyway: naming them too would only confuse.
    return ["operation"] if "operation" in differs else differs


def _reused_message(differs: list[str]) -> str:
    # Part names only: the digests say nothing useful and the values are not here to echo.
    return (
        f"this Idempotency-Key was first used for a request with another {', '.join(differs)}; "
        "send a new request with a new key"
    )


def _problem(req: InstallRequest) -> str:
    if not req.request_id:
        return "request_id is required"
    if req.operation in _NEEDS_VERSION and not req.version:
        return f"{req.operation.value} needs a version"
    if req.config is not None and req.operation not in _MAY_CARRY_CONFIG:
        return f"{req.operation.value} does not take a config"
    if req.operation is Op.SET_CONFIG and req.config is None:
        return "set_config needs a config"
    if req.secrets is not None and req.operation not in _MAY_CARRY_SECRETS:
        return f"{req.operation.value} does not take secrets"
    if req.operation is Op.SET_SECRETS and req.secrets is None:
        return "set_secrets needs secrets"
    if req.accept is not None and req.operation not in _MAY_ACCEPT:
        return f"{req.operation.value} does not take accept (only upgrade and rollback)"
    if req.deny is not None and req.operation not in _MAY_DENY:
        return f"{req.operation.value} does not take deny"
    if req.drop_schedules is not None and req.operation not in _MAY_ACCEPT:
        return f"{req.operation.value} does not take drop_schedules (only upgrade and rollback)"
    if req.config_merge and req.operation is not Op.SET_CONFIG:
        return f"{req.operation.value} does not merge a config"
    if req.operation is not Op.SET_LIMITS and (
        req.rate_limit_rps is not None or req.rate_limit_burst is not None
    ):
        return f"{req.operation.value} does not take rate limits"
    if req.rate_limit_rps is not None and req.rate_limit_rps <= 0:
        return "rate_limit_rps must be > 0"
    if req.rate_limit_burst is not None and req.rate_limit_burst < 1:
        return "rate_limit_burst must be >= 1"
    if req.operation is not Op.SET_DEBUG and req.debug_enabled is not None:
        return f"{req.operation.value} does not take debug_enabled"
    # isinstance, not `is None`: a client other than the API may send 0/1 or "true" in the JSON payload.
    if req.operation is Op.SET_DEBUG and not isinstance(req.debug_enabled, bool):
        return "set_debug needs debug_enabled (true or false)"
    return ""
