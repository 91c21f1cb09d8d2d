"""Secrets through the install workflows: envelope-encrypted at rest, never in clear in history."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import asyncpg
import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from bundles.blobstore import FilesystemBlobStore
from core.codec import EncryptionCodec, seal_secrets
from core.crypto import Keyring, open_envelope
from registry import read
from schema.payloads.install import InstallOperation as Op
from schema.temporal import install_change_workflow_id, install_workflow_id
from tests.workflows.helpers import Installs, Signer, manifest, publish_version, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.temporal]


async def decoded_payloads(msg: Message, codec: EncryptionCodec) -> list[bytes]:
    """Every payload in a history, decrypted with the codec (what Temporal UI shows with a codec server)."""
    out: list[bytes] = []
    for field, value in msg.ListFields():
        # Search attributes stay in clear for Temporal to index: the SDK never passes them through a
        # codec (and the codec refuses what it did not seal).
        if field.message_type is None or field.name == "search_attributes":
            continue
        # A `workflow.patched` marker holds the patch id only, written in clear by the SDK's core.
        if msg.DESCRIPTOR.name == "MarkerRecordedEventAttributes":
            continue
        if isinstance(value, Message):
            items = [value]
        elif field.message_type.GetOptions().map_entry:
            items = list(value.values())
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Payload):
                out.extend(p.data for p in await codec.decode([item]))
            elif isinstance(item, Message):
                out.extend(await decoded_payloads(item, codec))
    return out


async def test_secret_values_never_appear_in_clear_in_any_history(
    client: Client,
    raw_client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    keyring: Keyring,
) -> None:
    name = unique_name()
    await publish_version(client, task_queue, store, signer, tmp_path, manifest(name))
    first_value, second_value = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"

    r1 = await installs.apply(
        name,
        Op.INSTALL,
        version="1.0.0",
        secrets=seal_secrets(keyring, {"API_KEY": first_value}),
        request_id="install-1",
    )
    r2 = await installs.apply(
        name,
        Op.SET_SECRETS,
        secrets=seal_secrets(keyring, {"API_KEY": second_value, "OTHER": "x" * 20}),
        request_id="rotate-1",
    )

    assert (r1.revision, r1.secrets_version) == (2, 1)  # install + its initial secrets
    assert (r2.revision, r2.secrets_version) == (3, 2)
    envelope = await read.secret_envelope(db_pool, r2.install_id)
    assert envelope is not None
    assert open_envelope(keyring, envelope) == {"API_KEY": second_value, "OTHER": "x" * 20}
    stored = await db_pool.fetch("SELECT ciphertext, key_names FROM install_secrets ORDER BY version")
    assert [list(r["key_names"]) for r in stored] == [["API_KEY"], ["API_KEY", "OTHER"]]
    assert all(first_value.encode() not in r["ciphertext"] for r in stored)

    t = installs.tenant
    ids = [
        install_workflow_id(t, name),
        install_change_workflow_id(t, name, "install-1"),
        install_change_workflow_id(t, name, "rotate-1"),
    ]
    codec = EncryptionCodec(keyring)
    needles = [v.encode() for v in (first_value, second_value)]
    needles += [base64.b64encode(n) for n in needles]
    for wf_id in ids:
        history = await raw_client.get_workflow_handle(wf_id).fetch_history()
        stored_bytes = history.to_json().encode() + b"".join(e.SerializeToString() for e in history.events)
        assert not any(n in stored_bytes for n in needles), f"secret in clear in the history of {wf_id}"
        decoded = b"".join(await decoded_payloads(_as_message(history), codec))
        # The codec really decodes these histories (key names are visible), and the raw ones hide even those.
        assert b"API_KEY" in decoded
        assert b"API_KEY" not in stored_bytes
        assert not any(n in decoded for n in needles), f"secret readable through the codec in {wf_id}"
    audit = await db_pool.fetch("SELECT after::text AS a FROM audit_events WHERE tenant_id = $1", t)
    assert audit and not any(first_value in r["a"] or second_value in r["a"] for r in audit)


def _as_message(history: object) -> Message:
    from temporalio.api.history.v1 import History

    return History(events=list(history.events))  # type: ignore[attr-defined]
