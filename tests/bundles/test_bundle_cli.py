"""`extctl keys` and `extctl bundle`: the local round trip, and one-line failures."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bundles.hashing import content_hash
from cli.main import app
from tests.bundles.bundle_helpers import CORE_MODULE, make_extension_dir, manifest_bytes


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def _fails(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _signed_bundle(runner: CliRunner, tmp_path: Path) -> tuple[Path, Path, Path]:
    _ok(runner, "keys", "generate", "--out", str(tmp_path / "keys"))
    bundle = tmp_path / "hello.tar.zst"
    _ok(runner, "bundle", "pack", str(make_extension_dir(tmp_path / "ext")), "-o", str(bundle))
    sig = tmp_path / "hello.sig"
    _ok(
        runner, "bundle", "sign", str(bundle), "--key", str(tmp_path / "keys" / "signing.key"), "-o", str(sig)
    )
    return bundle, sig, tmp_path / "keys" / "signing.pub"


def test_keys_generate_writes_a_private_key_only_the_owner_can_read(
    runner: CliRunner, tmp_path: Path
) -> None:
    out = _ok(runner, "keys", "generate", "--out", str(tmp_path / "keys")).strip()
    assert out.startswith("ed25519:") and len(out) == 40
    private = tmp_path / "keys" / "signing.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (tmp_path / "keys" / "signing.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_keys_generate_refuses_to_overwrite(runner: CliRunner, tmp_path: Path) -> None:
    _ok(runner, "keys", "generate", "--out", str(tmp_path))
    before = (tmp_path / "signing.key").read_bytes()
    assert "already exists" in _fails(runner, "keys", "generate", "--out", str(tmp_path))
    assert (tmp_path / "signing.key").read_bytes() == before


def test_pack_prints_the_content_hash(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "b.tar.zst"
    printed = _ok(runner, "bundle", "pack", str(make_extension_dir(tmp_path / "ext")), "-o", str(out)).strip()
    assert printed == content_hash(out.read_bytes())


def test_generate_pack_sign_verify_round_trip(runner: CliRunner, tmp_path: Path) -> None:
    bundle, sig, pub = _signed_bundle(runner, tmp_path)
    doc = json.loads(sig.read_text())
    assert doc["statement"]["publisher"] == "acme"
    assert doc["statement"]["content_hash"] == content_hash(bundle.read_bytes())
    out = _ok(runner, "bundle", "verify", str(bundle), "--signature", str(sig), "--pubkey", str(pub))
    assert out.startswith("ok: com.acme.hello@1.0.0")


def test_verify_json_output(runner: CliRunner, tmp_path: Path) -> None:
    bundle, sig, pub = _signed_bundle(runner, tmp_path)
    out = _ok(
        runner, "--json", "bundle", "verify", str(bundle), "--signature", str(sig), "--pubkey", str(pub)
    )
    body = json.loads(out)
    assert body["ok"] is True and body["statement"]["name"] == "com.acme.hello"


def test_verify_fails_on_a_tampered_bundle(runner: CliRunner, tmp_path: Path) -> None:
    bundle, sig, pub = _signed_bundle(runner, tmp_path)
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    bundle.write_bytes(bytes(data))
    line = _fails(runner, "bundle", "verify", str(bundle), "--signature", str(sig), "--pubkey", str(pub))
    assert line.startswith("error: invalid_bundle: ")


def test_verify_fails_on_a_repacked_bundle_with_other_content(runner: CliRunner, tmp_path: Path) -> None:
    bundle, sig, pub = _signed_bundle(runner, tmp_path)
    src = tmp_path / "ext"
    (src / "ui" / "index.html").write_bytes(b"<script>evil()</script>")
    _ok(runner, "bundle", "pack", str(src), "-o", str(bundle))
    line = _fails(runner, "bundle", "verify", str(bundle), "--signature", str(sig), "--pubkey", str(pub))
    assert line.startswith("error: signature_invalid: signature statement content_hash")


def test_verify_fails_with_another_public_key(runner: CliRunner, tmp_path: Path) -> None:
    bundle, sig, _ = _signed_bundle(runner, tmp_path)
    _ok(runner, "keys", "generate", "--out", str(tmp_path / "other"))
    line = _fails(
        runner,
        "bundle",
        "verify",
        str(bundle),
        "--signature",
        str(sig),
        "--pubkey",
        str(tmp_path / "other" / "signing.pub"),
    )
    assert line.startswith("error: untrusted_key: ")


def test_verify_json_failure(runner: CliRunner, tmp_path: Path) -> None:
    bundle, sig, pub = _signed_bundle(runner, tmp_path)
    sig.write_text("{}")
    result = runner.invoke(
        app, ["--json", "bundle", "verify", str(bundle), "--signature", str(sig), "--pubkey", str(pub)]
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == "signature_invalid"


def test_inspect_prints_manifest_and_hash(runner: CliRunner, tmp_path: Path) -> None:
    bundle, _, _ = _signed_bundle(runner, tmp_path)
    out = _ok(runner, "bundle", "inspect", str(bundle))
    assert f"content_hash: {content_hash(bundle.read_bytes())}" in out
    assert '"name": "com.acme.hello"' in out
    body = json.loads(_ok(runner, "--json", "bundle", "inspect", str(bundle)))
    assert body["manifest"]["publisher"] == "acme"
    assert body["files"]["dist/main.wasm"] > 0


def test_inspect_names_a_core_module(runner: CliRunner, tmp_path: Path) -> None:
    bundle = tmp_path / "core.tar.zst"
    _ok(
        runner,
        "bundle",
        "pack",
        str(make_extension_dir(tmp_path / "ext", wasm=CORE_MODULE)),
        "-o",
        str(bundle),
    )
    line = _fails(runner, "bundle", "inspect", str(bundle))
    assert line == "error: invalid_bundle: dist/main.wasm is a core WebAssembly module, not a component"


def test_pack_names_the_bad_manifest_field(runner: CliRunner, tmp_path: Path) -> None:
    src = make_extension_dir(tmp_path / "ext", manifest=manifest_bytes(egress=["https://x.example.com"]))
    line = _fails(runner, "bundle", "pack", str(src), "-o", str(tmp_path / "b.tar.zst"))
    assert line.startswith("error: invalid_manifest: ") and "egress[0]" in line
    assert not (tmp_path / "b.tar.zst").exists()


def test_missing_file_is_a_one_line_failure(runner: CliRunner, tmp_path: Path) -> None:
    line = _fails(runner, "bundle", "inspect", str(tmp_path / "nope.tar.zst"))
    assert line.startswith("error: invalid_request: cannot access") and "nope.tar.zst" in line


def test_sign_refuses_a_public_key_as_private_key(runner: CliRunner, tmp_path: Path) -> None:
    bundle, _, pub = _signed_bundle(runner, tmp_path)
    line = _fails(runner, "bundle", "sign", str(bundle), "--key", str(pub), "-o", str(tmp_path / "x.sig"))
    assert line.startswith("error: signature_invalid: private key")


def test_installed_console_script_fails_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    extctl = Path(sys.executable).parent / "extctl"
    bad = tmp_path / "bad.tar.zst"
    bad.write_bytes(b"")
    proc = subprocess.run(
        [str(extctl), "bundle", "inspect", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stderr == "error: invalid_bundle: bundle is empty (0 bytes)\n"
