"""Secret activities: store a new secrets version, re-wrap data keys under the newest master key.

Secrets arrive sealed (`SealedSecrets`, core.codec) and are opened only here, inside the transaction
that encrypts them with the install's data key; the plaintext never enters a payload, an error message
or a log line (tracebacks render no locals, core.logging). This is the worker's only contact with
plaintext: a set replaces the whole map, so no stored secret is ever decrypted to merge, and master-key
rotation (`rewrap_data_keys`) re-wraps data keys without opening a ciphertext. Why the worker, not the
operator API, does the encryption: docs/deploy.md "Who can read secrets".
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities._errors import activity_errors
from core.codec import unseal_secrets
from core.crypto import Keyring
from registry import write
from schema.payloads.rotation import RewrapDataKeysInput, RewrapDataKeysResult
from schema.payloads.secrets import SetSecretsInput, SetSecretsResult


class SecretsActivities:
    def __init__(self, pool: asyncpg.Pool, keyring: Keyring) -> None:
        self.pool = pool
        self.keyring = keyring

    @activity.defn(name="set_secrets")
    async def set_secrets(self, inp: SetSecretsInput) -> SetSecretsResult:
        with activity_errors():
            secrets = unseal_secrets(self.keyring, inp.sealed)
            stored = await write.store_secrets(
                self.pool,
                self.keyring,
                tenant_id=inp.tenant_id,
                extension=inp.extension,
                secrets=secrets,
                workflow_id=inp.workflow_id,
                operation=inp.operation,
            )
        return SetSecretsResult(
            install_id=stored.install_id,
            secrets_version=stored.secrets_version,
            revision=stored.revision,
            key_names=stored.key_names,
            changed=stored.changed,
            version=stored.version,
            status=stored.status,
            content_hash=stored.content_hash,
            previous_key_names=stored.previous_key_names or [],
        )

    @activity.defn(name="rewrap_data_keys")
    async def rewrap_data_keys(self, inp: RewrapDataKeysInput) -> RewrapDataKeysResult:
        """One batch; the workflow loops until `done`."""
        with activity_errors():
            n = await write.rewrap_data_keys(self.pool, self.keyring, batch_size=inp.batch_size)
        return RewrapDataKeysResult(
            target_version=self.keyring.current_version, rewrapped=n, done=n < inp.batch_size
        )
