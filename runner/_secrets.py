"""Opening an install's sealed secrets (core.crypto) with a small cache.

The cache key is (install id, secrets version, master key version, sha256 of the ciphertext): a
rotation produces a new version, so stale plaintext is never served, and a forged envelope that reuses
a version cannot hit another's cache entry. Plaintext lives only in this process's memory.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from core.crypto import CryptoError, Keyring, SecretEnvelope, open_envelope
from schema.envelope import SealedSecrets


class SecretsUnavailable(Exception):
    pass


class SecretsCache:
    def __init__(self, keyring: Keyring | None, *, entries: int) -> None:
        self._keyring = keyring
        self._entries = entries
        self._cache: OrderedDict[tuple[str, int, int, str], dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, sealed: SealedSecrets, *, install_id: str) -> dict[str, str]:
        """Plaintext secrets of `install_id`; raises SecretsUnavailable (never echoing key material)."""
        if sealed.install_id != install_id:
            raise SecretsUnavailable("the sealed secrets belong to another install")
        if self._keyring is None:
            raise SecretsUnavailable("the runner has no master keyring (EXT_MASTER_KEYS)")
        digest = hashlib.sha256(sealed.ciphertext_b64.encode()).hexdigest()
        key = (sealed.install_id, sealed.secrets_version, sealed.master_key_version, digest)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        try:
            plain = open_envelope(self._keyring, SecretEnvelope(**sealed.model_dump()))
        except (CryptoError, ValueError) as exc:
            raise SecretsUnavailable(f"secrets do not decrypt: {type(exc).__name__}") from None
        with self._lock:
            self._cache[key] = plain
            while len(self._cache) > self._entries:
                self._cache.popitem(last=False)
        return plain
