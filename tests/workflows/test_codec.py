"""The payload codec and the transit sealing of secrets (core.codec); no services needed."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload

from core.codec import ENCODING, EncryptionCodec, data_converter, seal_secrets, unseal_secrets
from core.crypto import CryptoError, Keyring
from schema.payloads.install import InstallOperation, InstallRequest
from tests.workflows.helpers import fixed_keyring


async def test_payloads_are_encrypted_and_name_their_key_version() -> None:
    ring = fixed_keyring(1, 2)
    conv = data_converter(ring)
    req = InstallRequest(request_id="r", operation=InstallOperation.SET_CONFIG, config={"token": "visible?"})

    [payload] = await conv.encode([req])

    assert payload.metadata["encoding"] == ENCODING
    assert payload.metadata["encryption-key-id"] == b"2"
    assert b"visible?" not in payload.SerializeToString()
    [back] = await conv.decode([payload], [InstallRequest])
    assert back == req


async def test_old_key_versions_still_decode_and_unknown_ones_fail() -> None:
    old = EncryptionCodec(fixed_keyring(1))
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')
    [sealed] = await old.encode([plain])

    assert await EncryptionCodec(fixed_keyring(1, 2)).decode([sealed]) == [plain]
    with pytest.raises(CryptoError, match="version 1"):
        await EncryptionCodec(fixed_keyring(2)).decode([sealed])
    # Payloads written without the codec pass through untouched.
    assert await old.decode([plain]) == [plain]


def test_sealed_secrets_open_only_with_the_keyring() -> None:
    sealed = seal_secrets(fixed_keyring(1), {"B": "2", "A": "1"})

    assert sealed.key_names == ["A", "B"] and sealed.key_version == 1
    assert unseal_secrets(fixed_keyring(1, 2), sealed) == {"A": "1", "B": "2"}
    with pytest.raises(CryptoError):
        unseal_secrets(Keyring({1: b"\0" * 32}), sealed)
