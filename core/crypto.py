"""Envelope encryption of install secrets (ARCHITECTURE.md decision 6).

    master keyring (env EXT_MASTER_KEYS, versioned)  ──wraps──►  data key per install (AES-256-GCM)
    data key  ──encrypts──►  JSON map of the install's secrets (one ciphertext per secrets version)

Rotating the master key re-wraps every data key; ciphertexts stay as they are. Plaintext exists in two
places (docs/deploy.md "Who can read secrets"): the worker's `set_secrets` activity, which encrypts a
new map (it arrives sealed for transit, core.codec) and never decrypts a stored one; and the runner,
which unwraps and decrypts per request (with a cache keyed by install and secrets version). The worker
holds the keyring regardless (payload codec, wrapping, rotation), so encrypting elsewhere would not
change who can decrypt. Associated data binds each ciphertext to its install and version, so a
ciphertext copied to another install or version fails to decrypt.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import ExtplaneError
from schema.errors import ErrorCode

KEY_BYTES = 32
NONCE_BYTES = 12


class CryptoError(ExtplaneError):
    default_code = ErrorCode.INTERNAL


@dataclass(frozen=True)
class Keyring:
    """Master keys by version; the highest version wraps new data keys. Its repr names the versions
    only, so a keyring that ends up in a log line or an error shows no key material."""

    keys: dict[int, bytes] = field(repr=False)

    def __repr__(self) -> str:
        return f"Keyring(versions={sorted(self.keys)})"

    @classmethod
    def parse(cls, value: str) -> Keyring:
        """Parse `"1:<base64 32 bytes>,2:<base64 32 bytes>"`. Error messages never echo key material."""
        keys: dict[int, bytes] = {}
        for i, item in enumerate(p.strip() for p in value.split(",") if p.strip()):
            version_text, sep, b64 = item.partition(":")
            if not sep or not version_text.isdigit():
                raise CryptoError(f"master keyring entry {i} must look like '<version>:<base64 key>'")
            try:
                key = base64.b64decode(b64, validate=True)
            except ValueError:
                raise CryptoError(f"master key version {version_text} is not valid base64") from None
            if len(key) != KEY_BYTES:
                raise CryptoError(f"master key version {version_text} must be {KEY_BYTES} bytes")
            keys[int(version_text)] = key
        if not keys:
            raise CryptoError("master keyring is empty; set EXT_MASTER_KEYS")
        return cls(keys)

    @staticmethod
    def generate_entry(version: int) -> str:
        return f"{version}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"

    @property
    def current_version(self) -> int:
        return max(self.keys)

    def key(self, version: int) -> bytes:
        try:
            return self.keys[version]
        except KeyError:
            raise CryptoError(f"master key version {version} is not in the keyring") from None


def _aad(*parts: str) -> bytes:
    return "\x1f".join(parts).encode()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_data_key(
    keyring: Keyring, data_key: bytes, *, install_id: str, version: int | None = None
) -> tuple[bytes, int]:
    """Encrypt a data key under a master key; returns (nonce + ciphertext, master key version)."""
    v = keyring.current_version if version is None else version
    nonce = os.urandom(NONCE_BYTES)
    wrapped = AESGCM(keyring.key(v)).encrypt(nonce, data_key, _aad("data-key", install_id, str(v)))
    return nonce + wrapped, v


def unwrap_data_key(keyring: Keyring, wrapped: bytes, *, install_id: str, master_version: int) -> bytes:
    nonce, body = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
    try:
        return AESGCM(keyring.key(master_version)).decrypt(
            nonce, body, _aad("data-key", install_id, str(master_version))
        )
    except InvalidTag:
        raise CryptoError("data key does not unwrap with the master key it names") from None


def encrypt_secrets(
    data_key: bytes, secrets: dict[str, str], *, install_id: str, secrets_version: int
) -> tuple[bytes, bytes]:
    """Returns (ciphertext, nonce)."""
    nonce = os.urandom(NONCE_BYTES)
    plaintext = json.dumps(secrets, sort_keys=True, separators=(",", ":")).encode()
    ct = AESGCM(data_key).encrypt(nonce, plaintext, _aad("secrets", install_id, str(secrets_version)))
    return ct, nonce


def decrypt_secrets(
    data_key: bytes, ciphertext: bytes, nonce: bytes, *, install_id: str, secrets_version: int
) -> dict[str, str]:
    try:
        plaintext = AESGCM(data_key).decrypt(
            nonce, ciphertext, _aad("secrets", install_id, str(secrets_version))
        )
    except InvalidTag:
        raise CryptoError("secrets ciphertext does not decrypt for this install and version") from None
    data = json.loads(plaintext)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise CryptoError("decrypted secrets are not a string map")
    return data


@dataclass(frozen=True, kw_only=True)
class SecretEnvelope:
    """What travels gateway -> runner for one call: everything sealed, nothing in clear."""

    install_id: str
    secrets_version: int
    ciphertext_b64: str
    nonce_b64: str
    wrapped_key_b64: str
    master_key_version: int


def open_envelope(keyring: Keyring, env: SecretEnvelope) -> dict[str, str]:
    data_key = unwrap_data_key(
        keyring,
        base64.b64decode(env.wrapped_key_b64),
        install_id=env.install_id,
        master_version=env.master_key_version,
    )
    return decrypt_secrets(
        data_key,
        base64.b64decode(env.ciphertext_b64),
        base64.b64decode(env.nonce_b64),
        install_id=env.install_id,
        secrets_version=env.secrets_version,
    )
