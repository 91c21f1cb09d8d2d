"""Envelope encryption: round trip, binding to install and version, master-key rotation."""

from __future__ import annotations

import base64

import pytest

from core.crypto import (
    CryptoError,
    Keyring,
    SecretEnvelope,
    decrypt_secrets,
    encrypt_secrets,
    new_data_key,
    open_envelope,
    unwrap_data_key,
    wrap_data_key,
)


def _keyring(*versions: int) -> Keyring:
    return Keyring.parse(",".join(Keyring.generate_entry(v) for v in versions))


def _envelope(
    keyring: Keyring, secrets: dict[str, str], install_id: str = "i-1", version: int = 3
) -> SecretEnvelope:
    dk = new_data_key()
    wrapped, mv = wrap_data_key(keyring, dk, install_id=install_id)
    ct, nonce = encrypt_secrets(dk, secrets, install_id=install_id, secrets_version=version)
    return SecretEnvelope(
        install_id=install_id,
        secrets_version=version,
        ciphertext_b64=base64.b64encode(ct).decode(),
        nonce_b64=base64.b64encode(nonce).decode(),
        wrapped_key_b64=base64.b64encode(wrapped).decode(),
        master_key_version=mv,
    )


def test_round_trip_uses_the_newest_master_key() -> None:
    kr = _keyring(1, 2)
    env = _envelope(kr, {"api_key": "s3cr3t-value"})
    assert env.master_key_version == 2
    assert open_envelope(kr, env) == {"api_key": "s3cr3t-value"}
    assert b"s3cr3t-value" not in base64.b64decode(env.ciphertext_b64)


def test_ciphertext_is_bound_to_install_and_version() -> None:
    kr = _keyring(1)
    dk = new_data_key()
    ct, nonce = encrypt_secrets(dk, {"k": "v"}, install_id="a", secrets_version=1)
    with pytest.raises(CryptoError):
        decrypt_secrets(dk, ct, nonce, install_id="b", secrets_version=1)
    with pytest.raises(CryptoError):
        decrypt_secrets(dk, ct, nonce, install_id="a", secrets_version=2)
    wrapped, mv = wrap_data_key(kr, dk, install_id="a")
    with pytest.raises(CryptoError):
        unwrap_data_key(kr, wrapped, install_id="b", master_version=mv)


def test_rewrapping_under_a_new_master_key_keeps_secrets_readable() -> None:
    old = _keyring(1)
    env = _envelope(old, {"k": "v"})
    new = Keyring({**old.keys, **_keyring(2).keys})
    dk = unwrap_data_key(
        new, base64.b64decode(env.wrapped_key_b64), install_id=env.install_id, master_version=1
    )
    rewrapped, mv = wrap_data_key(new, dk, install_id=env.install_id)
    assert mv == 2
    moved = SecretEnvelope(
        **{**env.__dict__, "wrapped_key_b64": base64.b64encode(rewrapped).decode(), "master_key_version": 2}
    )
    assert open_envelope(new, moved) == {"k": "v"}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("x", "must look like"),
        ("1:not-base64!", "not valid base64"),
        ("1:" + "QUFB", "32 bytes"),
    ],
)
def test_bad_keyrings_are_named_without_echoing_material(value: str, fragment: str) -> None:
    with pytest.raises(CryptoError) as err:
        Keyring.parse(value)
    assert fragment in err.value.message
    assert "QUFB" not in err.value.message


def test_secret_maps_are_opened_only_where_the_docs_say() -> None:
    """docs/deploy.md "Who can read secrets": the worker's set_secrets activity opens the transit seal,
    the runner opens stored envelopes; no other module may call either (or decrypt a stored map)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    openers: dict[str, set[str]] = {"unseal_secrets": set(), "open_envelope": set(), "decrypt_secrets": set()}
    for path in sorted(root.glob("[a-z]*/**/*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("tests/", ".venv/", "bench/")):
            continue
        text = path.read_text()
        for name, where in openers.items():
            if re.search(rf"\b{name}\(", text.replace(f"def {name}(", "")):
                where.add(rel)
    assert openers == {
        "unseal_secrets": {"activities/secrets.py"},
        "open_envelope": {"runner/_secrets.py"},
        "decrypt_secrets": {"core/crypto.py"},  # inside open_envelope
    }, openers
