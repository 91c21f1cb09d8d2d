"""Secrets in transit: sealed before they enter any workflow or activity payload.

The operator API seals the secret map with `core.codec.seal_secrets(keyring, secrets)` (AES-256-GCM
under a key derived from the master keyring) and sends only `SealedSecrets`; the secrets activity
unseals it and re-encrypts it with the install's data key. So even a history decoded by the payload
codec shows no secret value, and the key names alone are readable for audit.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class SealedSecrets:
    ciphertext_b64: str
    nonce_b64: str
    # Master key version the transit key was derived from.
    key_version: int
    key_names: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class SetSecretsInput:
    tenant_id: str
    extension: str
    sealed: SealedSecrets
    # The workflow making the change: install_history and install_secrets record it (idempotency key).
    workflow_id: str
    operation: str = "set_secrets"


@dataclass(frozen=True, kw_only=True)
class SetSecretsResult:
    install_id: str
    secrets_version: int
    revision: int
    key_names: list[str] = field(default_factory=list)
    # False on an idempotent retry: this workflow had already written the version.
    changed: bool = True
    version: str = ""
    status: str = ""
    # Content hash of `version`, and the key names of the secrets this change replaced (audit `before`).
    content_hash: str = ""
    previous_key_names: list[str] = field(default_factory=list)
