"""Malformed `secrets set`, `config set` and `install --secret/--config` arguments: extctl (a real
subprocess, as a user runs it) fails in one line that never quotes the argument, whether our own k=v
parsing or click's option parsing refuses it. Nothing here reaches an API (it is never called)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VALUE = "sk-live-" + uuid.uuid4().hex

CASES = [
    ("secrets", "set", "app", "--tenant", "t", VALUE),  # the key forgotten
    ("secrets", "set", "app", "--tenant", "t", f"={VALUE}"),  # an empty key
    ("secrets", "set", "app", "--tenant", "t", "a=1", VALUE),  # the second one malformed
    ("secrets", "set", "app", "--tenant", "t", "a=1", f"--{VALUE}"),  # parsed as an unknown option
    ("secrets", "set", "app", "--tenant", "t", "a=1", f"-{VALUE}"),
    ("secrets", VALUE),  # not a command
    ("config", "set", "app", "--tenant", "t", VALUE),
    ("install", "app@1.0.0", "--tenant", "t", "--secret", VALUE),
    ("install", "app@1.0.0", "--tenant", "t", f"--secret={VALUE}"),
    ("install", "app@1.0.0", "--tenant", "t", "--config", VALUE),
    ("install", "app@1.0.0", "--tenant", "t", "--secret", "k=v", VALUE),  # an extra argument
    ("limits", "set", "app", "--tenant", "t", "--rps", VALUE),  # a value of the wrong type
]


def _extctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXT_")}
    # Nothing listens there: a command that got as far as calling the API would fail differently.
    env |= {"PYTHONPATH": str(ROOT), "EXT_API_URL": "http://127.0.0.1:9", "EXT_ADMIN_TOKEN": "x" * 20}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "args",
    [*CASES, ("--json", *CASES[0]), ("--json", *CASES[3])],
    ids=lambda a: " ".join(a).replace(VALUE, "VALUE"),
)
def test_malformed_arguments_fail_in_one_line_without_the_value(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    res = _extctl(*args, cwd=tmp_path)
    assert res.returncode != 0
    assert VALUE not in res.stdout + res.stderr, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid_request: "), res.stderr
    assert "cannot reach the operator API" not in lines[0]


def test_a_usage_error_still_names_the_parameter(tmp_path: Path) -> None:
    res = _extctl("secrets", "set", "app", "k=v", cwd=tmp_path)
    assert res.returncode == 2 and "Missing option '--tenant'" in res.stderr, res.stderr
    res = _extctl("secrets", "set", "app", "--tenat", "t", "k=v", cwd=tmp_path)
    assert "did you mean --tenant?" in res.stderr, res.stderr
    res = _extctl("secrets", "set", "app", "--tenant", "t", "a=1", "b", cwd=tmp_path)
    assert "secret #2 of 2 must look like key=value" in res.stderr, res.stderr
