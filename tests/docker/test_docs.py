"""Docs that must not drift: docs/manifest.md's reference section is generated from
schema/manifest.schema.json (`make docs` / `python -m tools.manifest_docs`), and the deployment docs
link what they describe."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from tools.manifest_docs import BEGIN, DOC_FILE, END, load_schema, render, splice

ROOT = Path(__file__).resolve().parents[2]


def test_manifest_reference_is_generated_from_the_schema() -> None:
    current = DOC_FILE.read_text()
    assert splice(current, render(load_schema())) == current, "docs/manifest.md is stale: run `make docs`"


def test_every_schema_field_is_in_the_reference() -> None:
    section = render(load_schema())
    for field in load_schema()["properties"]:
        assert f"| `{field}` |" in section
    assert "| `api.endpoints[].path` |" in section
    assert "| `cap:debug.logs` |" in section


def test_a_schema_change_makes_the_check_fail() -> None:
    schema = copy.deepcopy(dict(load_schema()))
    schema["properties"]["limits"] = dict(schema["properties"]["limits"])
    schema["$defs"]["Limits"]["properties"]["fuel"] = {"type": "integer", "minimum": 1}
    current = DOC_FILE.read_text()
    assert splice(current, render(schema)) != current
    assert "| `limits.fuel` | integer | no |  | >= 1 |" in render(schema)


def test_splice_needs_the_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        splice("# no markers here\n", "x")
    doc = f"intro\n{BEGIN}\nold\n{END}\nouter\n"
    assert splice(doc, "new\n") == f"intro\n{BEGIN}\nnew\n{END}\nouter\n"


@pytest.mark.parametrize(
    "doc",
    [
        "README.md",
        "docs/deploy.md",
        "docs/author-guide.md",
        "docs/operator.md",
        "docs/runner.md",
        "docs/security.md",
        "docs/performance.md",
    ],
)
def test_relative_links_resolve(doc: str) -> None:
    path = ROOT / doc
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), f"{doc} links to missing {target}"


def test_readme_lists_the_new_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    for doc in (
        "docs/deploy.md",
        "docs/manifest.md",
        "docs/author-guide.md",
        "docs/security.md",
        "docs/performance.md",
    ):
        assert f"]({doc})" in readme, doc


def _documented(doc: str) -> set[str]:
    return set(re.findall(r"`(EXT_[A-Z0-9_]+)`", (ROOT / doc).read_text()))


def test_runner_reference_lists_every_runner_setting() -> None:
    from core.settings import CommonSettings, RunnerSettings

    own = set(RunnerSettings.model_fields) - set(CommonSettings.model_fields)
    missing = {f"EXT_{f.upper()}" for f in own} - _documented("docs/runner.md")
    assert not missing, f"docs/runner.md does not document {sorted(missing)}"


def test_gateway_reference_lists_every_gateway_setting() -> None:
    from core.settings import ApiSettings, CommonSettings

    own = set(ApiSettings.model_fields) - set(CommonSettings.model_fields) - {"admin_token"}
    docs = ("docs/gateway.md", "docs/debug-stream.md", "docs/ui.md", "docs/operator.md")
    documented = set().union(*(_documented(d) for d in docs))
    missing = {f"EXT_{f.upper()}" for f in own} - documented
    assert not missing, f"docs/gateway.md does not document {sorted(missing)}"


def test_documented_variables_exist() -> None:
    """No doc names an EXT_ variable that no settings class has (renamed or mistyped)."""
    from api.operator.settings import OperatorSettings
    from core.settings import ApiSettings, RunnerSettings, WorkerSettings

    known = {
        f"EXT_{f.upper()}"
        for cls in (ApiSettings, RunnerSettings, WorkerSettings, OperatorSettings)
        for f in cls.model_fields
    }
    # Read by extctl only (cli/), not by a service.
    known |= {"EXT_API_URL", "EXT_GATEWAY_URL", "EXT_TOKEN", "EXT_RUNNER_URL"}
    for doc in ("docs/deploy.md", "docs/runner.md", "docs/gateway.md", "docs/operator.md"):
        unknown = _documented(doc) - known
        assert not unknown, f"{doc} names unknown settings {sorted(unknown)}"


# The README quick start (tests/cli/test_readme_quick_start.py runs it; these checks need no services).
def _extctl_lines() -> list[list[str]]:
    from tests.support.readme import quick_start_commands

    lines = []
    for words in quick_start_commands():
        if re.fullmatch(r"[A-Z_]+=\$\(extctl", words[0]):  # KEY_ID=$(extctl ... )
            words = ["extctl", *words[1:-1], words[-1].removesuffix(")")]
        if words[0] == "extctl":
            lines.append(words[1:])
    return lines


def test_quick_start_builds_before_it_packs() -> None:
    from tests.support.readme import quick_start_commands

    commands = [" ".join(w) for w in quick_start_commands()]
    build = next(i for i, c in enumerate(commands) if "sdk/python/build.py" in c)
    built_dir = commands[build].split()[-1]
    packs = [i for i, c in enumerate(commands) if c.startswith(f"extctl bundle pack {built_dir} ")]
    assert packs, "the quick start packs something other than what it built"
    assert build < min(packs)
    assert not any(c.startswith("extctl bundle pack") for c in commands[:build])


def test_quick_start_names_match_the_sample() -> None:
    import json

    sample = json.loads((ROOT / "examples" / "hello" / "manifest.json").read_text())
    words = [w for line in _extctl_lines() for w in line]
    names = {w.split("@")[0] for w in words if re.fullmatch(r"[a-z][a-z0-9]*(\.[a-z0-9-]+)+(@.*)?", w)}
    names -= {w for w in names if w.endswith((".tar.zst", ".sig", ".pub", ".key"))}
    # A namespace it registers is a prefix (at a dot) of the sample's name, not another name.
    prefixes = {line[2] for line in _extctl_lines() if line[:2] == ["namespaces", "add"]}
    assert all(sample["name"].startswith(p + ".") for p in prefixes)
    assert names - prefixes == {sample["name"]}
    publishers = {line[line.index("--publisher") + 1] for line in _extctl_lines() if "--publisher" in line}
    assert publishers == {sample["publisher"]}
    assert f"{sample['name']}@{sample['version']}" in words, "installs a version the sample does not have"


def test_quick_start_commands_exist_with_those_options() -> None:
    import typer

    from cli.main import app

    root = typer.main.get_command(app)
    for line in _extctl_lines():
        command, rest = root, list(line)
        while rest and rest[0] in (getattr(command, "commands", None) or {}):
            command = command.commands[rest.pop(0)]  # type: ignore[attr-defined]
        assert not hasattr(command, "commands"), f"`extctl {' '.join(line)}` names no command"
        known = {opt for p in command.params for opt in [*p.opts, *p.secondary_opts]}
        unknown = {w for w in rest if w.startswith("-") and w not in known}
        assert not unknown, f"`extctl {' '.join(line)}`: no option {sorted(unknown)}"
