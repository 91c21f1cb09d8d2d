"""Encryption of everything extplane puts into Temporal (ARCHITECTURE.md decision 6).

    master keyring (EXT_MASTER_KEYS, versioned)
      ├─HKDF("extplane/temporal-payload-codec/v1")─► codec key per version: every workflow/activity
      │                                              payload, AES-256-GCM (`EncryptionCodec`)
      └─HKDF("extplane/secrets-transit/v1")────────► transit key per version: secret maps sealed by the
                                                     operator API before they enter any payload

Worker, operator API and CLI build their client with `data_converter(keyring)`, so histories hold only
ciphertext; a payload names the key version it was sealed with, so after a rotation old histories still
decode while the keyring keeps the old version. A payload that is not sealed by this codec is refused
on decode, never passed through: only holders of the keyring can start or signal a workflow.
Secrets are sealed a second time (`seal_secrets`) so that even a history decoded with the codec
(Temporal UI behind a codec server) shows only key names.

This module knows no workflow: it depends on the keyring and the `SealedSecrets` contract only.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Sequence
from functools import cached_property

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

from core.crypto import CryptoError, Keyring
from schema.payloads.secrets import SealedSecrets

ENCODING = b"binary/encrypted"
_KEY_ID = "encryption-key-id"
_CODEC_INFO = b"extplane/temporal-payload-codec/v1"
_TRANSIT_INFO = b"extplane/secrets-transit/v1"
_NONCE = 12


def derive_key(keyring: Keyring, version: int, info: bytes) -> bytes:
    """A 256-bit key for one purpose (`info`) from one master key version."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(keyring.key(version))


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over the serialized payload; the key version travels in the payload metadata."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    @cached_property
    def _keys(self) -> dict[int, AESGCM]:
        return {v: AESGCM(derive_key(self._keyring, v, _CODEC_INFO)) for v in self._keyring.keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        version = self._keyring.current_version
        aead = self._keys[version]
        out: list[Payload] = []
        for p in payloads:
            nonce = os.urandom(_NONCE)
            sealed = nonce + aead.encrypt(nonce, p.SerializeToString(), ENCODING)
            out.append(Payload(metadata={"encoding": ENCODING, _KEY_ID: str(version).encode()}, data=sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Open payloads this codec sealed; refuse anything else (CryptoError).

        A payload in clear was written by a client without the codec, i.e. by someone who reached
        Temporal but holds no master key: accepting it would let them start any workflow (CreateToken
        with admin scope) or signal one. On a worker the error fails the workflow task, so such a
        workflow never runs a step. Search attributes stay in clear (Temporal indexes them); the SDK
        never passes them through a codec.
        """
        out: list[Payload] = []
        for p in payloads:
            encoding = p.metadata.get("encoding", b"")
            if encoding != ENCODING:
                shown = encoding[:40].decode("ascii", "replace") or "none"
                raise CryptoError(
                    f"refusing a payload that is not encrypted by the extplane codec (encoding {shown!r}): "
                    "start and signal workflows through the operator API or a client built with "
                    "core.codec.data_converter"
                )
            try:
                version = int(p.metadata[_KEY_ID].decode())
            except (KeyError, ValueError):
                raise CryptoError("encrypted payload names no valid master key version") from None
            aead = self._keys.get(version)
            if aead is None:
                raise CryptoError(f"payload sealed with master key version {version}, not in the keyring")
            try:
                raw = aead.decrypt(p.data[:_NONCE], p.data[_NONCE:], ENCODING)
            except InvalidTag:
                raise CryptoError(f"payload does not decrypt with master key version {version}") from None
            out.append(Payload.FromString(raw))
        return out


def data_converter(keyring: Keyring) -> DataConverter:
    """The converter of every extplane Temporal client: default JSON payloads, encrypted."""
    return dataclasses.replace(DataConverter.default, payload_codec=EncryptionCodec(keyring))


def _aad(version: int) -> bytes:
    return b"extplane-secrets-transit\x1f" + str(version).encode()


def seal_secrets(keyring: Keyring, secrets: dict[str, str]) -> SealedSecrets:
    """Seal a secret map for a workflow payload (operator API side)."""
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()):
        raise CryptoError("secrets must be a map of strings to strings")
    version = keyring.current_version
    nonce = os.urandom(_NONCE)
    plaintext = json.dumps(secrets, sort_keys=True, separators=(",", ":")).encode()
    ct = AESGCM(derive_key(keyring, version, _TRANSIT_INFO)).encrypt(nonce, plaintext, _aad(version))
    return SealedSecrets(
        ciphertext_b64=base64.b64encode(ct).decode(),
        nonce_b64=base64.b64encode(nonce).decode(),
        key_version=version,
        key_names=sorted(secrets),
    )


def unseal_secrets(keyring: Keyring, sealed: SealedSecrets) -> dict[str, str]:
    """Open a sealed secret map (secrets activity side). Raises CryptoError when it does not open."""
    key = derive_key(keyring, sealed.key_version, _TRANSIT_INFO)
    try:
        nonce = base64.b64decode(sealed.nonce_b64)
        ct = base64.b64decode(sealed.ciphertext_b64)
        plaintext = AESGCM(key).decrypt(nonce, ct, _aad(sealed.key_version))
    except (InvalidTag, ValueError):
        raise CryptoError("sealed secrets do not open with the master keyring") from None
    data = json.loads(plaintext)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise CryptoError("sealed secrets are not a string map")
    return data
