"""`--json` is accepted after the subcommand (and after each nested group) with the same effect as
before it, on every command of the typer app: the tree is enumerated, so a new command is covered
without touching this file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer._click import core as click
from typer.testing import CliRunner

from cli.json_flag import JSON_FLAG, has_json_flag
from cli.main import app
from cli.output import STATE
from tests.bundles.bundle_helpers import make_extension_dir

Node = tuple[tuple[str, ...], click.Command]


def _walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[Node]:
    yield path, command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from _walk(sub, (*path, name))


def _leaves(root: click.Command) -> list[tuple[str, ...]]:
    return [path for path, cmd in _walk(root) if not hasattr(cmd, "commands")]


LEAVES = _leaves(typer.main.get_command(app))


def _placements(path: tuple[str, ...]) -> list[list[str]]:
    """`--json` before the command, after it, and after each group segment of a nested command."""
    return [[JSON_FLAG, *path]] + [[*path[:i], JSON_FLAG, *path[i:]] for i in range(1, len(path) + 1)]


class _Recorder:
    """Replaces each command's function in a private copy of the tree: records the JSON mode the
    command would have run with. Required parameters are relaxed, so no command needs real input."""

    def __init__(self) -> None:
        self.root = typer.main.get_command(app)
        self.seen: dict[tuple[str, ...], bool] = {}
        for path, cmd in _walk(self.root):
            if hasattr(cmd, "commands"):
                continue
            cmd.callback = self._record(path)
            for param in cmd.params:
                param.required = False

    def _record(self, path: tuple[str, ...]) -> Any:
        def callback(**_kwargs: Any) -> None:
            self.seen[path] = STATE.json_mode

        return callback

    def mode(self, path: tuple[str, ...], args: list[str]) -> bool:
        self.seen.pop(path, None)
        self.root.main(args, prog_name="extctl", standalone_mode=False)
        return self.seen[path]


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    before = STATE.json_mode
    yield _Recorder()
    STATE.json_mode = before


def test_the_tree_has_the_commands_of_the_contract() -> None:
    assert {("status",), ("tokens", "create"), ("bundle", "pack"), ("dev", "up"), ("logs",)} <= set(LEAVES)
    assert len(LEAVES) >= 30


def test_every_command_and_group_has_the_flag() -> None:
    for path, cmd in _walk(typer.main.get_command(app)):
        assert has_json_flag(cmd), f"extctl {' '.join(path)} has no --json"


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_json_anywhere_has_the_same_effect(recorder: _Recorder, path: tuple[str, ...]) -> None:
    assert recorder.mode(path, list(path)) is False
    for args in _placements(path):
        assert recorder.mode(path, args) is True, args
    assert recorder.mode(path, list(path)) is False, "the mode does not leak into the next run"


def test_json_as_an_option_value_stays_a_value(recorder: _Recorder) -> None:
    seen: dict[str, Any] = {}
    call = next(cmd for path, cmd in _walk(recorder.root) if path == ("call",))
    call.callback = lambda **kw: seen.update(kw, mode=STATE.json_mode)
    recorder.root.main(["call", "com.acme.x", "/p", "--data", JSON_FLAG], standalone_mode=False)
    assert seen["data"] == JSON_FLAG and seen["mode"] is False


def test_pack_prints_json_with_the_flag_after_the_command(tmp_path: Path) -> None:
    src = make_extension_dir(tmp_path / "ext")
    out = tmp_path / "b.tar.zst"
    result = CliRunner().invoke(app, ["bundle", "pack", str(src), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["content_hash"].startswith("sha256:")
    before = CliRunner().invoke(app, ["--json", "bundle", "pack", str(src), "-o", str(out)])
    assert json.loads(before.stdout) == json.loads(result.stdout)


def test_a_failure_with_the_flag_after_the_command_is_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bundle", "inspect", str(tmp_path / "missing.tar.zst"), "--json"])
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ")
    assert set(json.loads(result.stdout)) == {"error", "message"}
