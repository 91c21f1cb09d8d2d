"""Master key rotation: re-wrap every install data key with the newest master key.

Start `WorkflowType.ROTATE_MASTER_KEY` with `RotateMasterKeyInput` on CONTROL_TASK_QUEUE, id
`manual_rotation_workflow_id(queue)` (`POST /v1/master-key/rotate`), or let the Schedule
`ROTATION_SCHEDULE_ID` start it.
Secret ciphertexts are not touched: only the wrapping of their data keys changes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RotateMasterKeyInput:
    actor: str = "system"
    batch_size: int = 200


@dataclass(frozen=True, kw_only=True)
class RotateMasterKeyResult:
    target_version: int
    rewrapped: int


@dataclass(frozen=True, kw_only=True)
class RewrapDataKeysInput:
    batch_size: int = 200


@dataclass(frozen=True, kw_only=True)
class RewrapDataKeysResult:
    target_version: int
    rewrapped: int
    # False when a batch was full and more keys may remain under an older master key.
    done: bool
