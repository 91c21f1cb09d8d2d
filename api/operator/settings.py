"""Settings of the operator API: ApiSettings plus what starting workflows needs.

`master_keys` builds the payload codec (so the API and the worker agree on encrypted payloads) and the
transit key that seals secrets before they enter a workflow; `blob_dir` and `control_task_queue` mean
what they mean for the worker (WorkerSettings), so both sides name the same staging file and queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import SecretStr, model_validator

from core.settings import ApiSettings
from schema.temporal import CONTROL_TASK_QUEUE


class OperatorSettings(ApiSettings):
    serves_ui = False  # no UI sessions here: EXT_UI_SESSION_SECRET is the gateway's alone

    master_keys: SecretStr = SecretStr("")
    blob_dir: Path | None = None
    control_task_queue: str = CONTROL_TASK_QUEUE
    # How long a request waits for a workflow result before answering 202 with the operation id.
    wait_seconds: float = 120.0
    # How long a token lookup is cached (revocation takes effect within this time).
    token_cache_seconds: float = 5.0

    @model_validator(mode="after")
    def _keys(self) -> Self:
        if not self.is_dev and not self.master_keys.get_secret_value():
            raise ValueError("EXT_MASTER_KEYS is missing; the operator API needs the keyring of the worker")
        return self

    @classmethod
    def of(cls, settings: ApiSettings) -> OperatorSettings:
        """Widen plain ApiSettings (fields it lacks come from the environment or defaults)."""
        if isinstance(settings, OperatorSettings):
            return settings
        return cls.model_validate(settings.model_dump())
