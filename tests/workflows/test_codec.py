"""The payload codec and the transit sealing of secrets (core.codec); the last test runs a real worker
against a client without the codec."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from core.codec import ENCODING, EncryptionCodec, data_converter, seal_secrets, unseal_secrets
from core.crypto import CryptoError, Keyring
from schema.payloads.install import InstallOperation, InstallRequest
from schema.payloads.tokens import CREATE_TOKEN_WORKFLOW, CreateTokenInput
from schema.temporal import token_workflow_id
from tests.support.polling import eventually
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


async def test_payloads_not_sealed_by_the_codec_are_refused() -> None:
    codec = EncryptionCodec(fixed_keyring(1))
    for payload in (
        Payload(metadata={"encoding": b"json/plain"}, data=b'"x"'),
        Payload(metadata={}, data=b"raw"),
        Payload(metadata={"encoding": ENCODING}, data=b"no key version"),
        Payload(metadata={"encoding": ENCODING, "encryption-key-id": b"1"}, data=b"\0" * 40),
    ):
        with pytest.raises(CryptoError):
            await codec.decode([payload])
    with pytest.raises(CryptoError, match="not encrypted by the extplane codec"):
        await codec.decode([Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')])


def test_sealed_secrets_open_only_with_the_keyring() -> None:
    sealed = seal_secrets(fixed_keyring(1), {"B": "2", "A": "1"})

    assert sealed.key_names == ["A", "B"] and sealed.key_version == 1
    assert unseal_secrets(fixed_keyring(1, 2), sealed) == {"A": "1", "B": "2"}
    with pytest.raises(CryptoError):
        unseal_secrets(Keyring({1: b"\0" * 32}), sealed)


@pytest.mark.integration
@pytest.mark.temporal
async def test_a_workflow_started_without_the_codec_never_runs(
    raw_client: Client, client: Client, task_queue: str, worker: None, db_pool: asyncpg.Pool
) -> None:
    """Anyone who reaches Temporal can start a workflow; without the keyring its input is in clear.
    The worker refuses it on decode: the first workflow task fails, no activity runs, no token row."""
    token_id = str(uuid.uuid4())
    handle = await raw_client.start_workflow(
        CREATE_TOKEN_WORKFLOW,
        CreateTokenInput(token_id=token_id, token_hash="ab" * 32, scopes=["admin"], actor="intruder"),
        id=token_workflow_id(token_id),
        task_queue=task_queue,
    )
    try:

        async def task_failed() -> list[str]:
            history = await raw_client.get_workflow_handle(handle.id).fetch_history()
            return [
                e.workflow_task_failed_event_attributes.failure.message
                for e in history.events
                if e.HasField("workflow_task_failed_event_attributes")
            ]

        messages = await eventually(task_failed, deadline_s=30)
        assert "not encrypted by the extplane codec" in messages[0], messages
        history = await raw_client.get_workflow_handle(handle.id).fetch_history()
        assert not any(e.HasField("activity_task_scheduled_event_attributes") for e in history.events)
        assert (
            await db_pool.fetchval("SELECT count(*) FROM api_tokens WHERE id = $1", uuid.UUID(token_id)) == 0
        )
        # The same start through the codec runs (the refusal is about the encoding, not the input).
        ok_id = str(uuid.uuid4())
        await client.execute_workflow(
            CREATE_TOKEN_WORKFLOW,
            CreateTokenInput(token_id=ok_id, token_hash="cd" * 32, scopes=["admin"]),
            id=token_workflow_id(ok_id),
            task_queue=task_queue,
        )
        assert await db_pool.fetchval("SELECT count(*) FROM api_tokens WHERE id = $1", uuid.UUID(ok_id)) == 1
    finally:
        await handle.terminate("test finished")
