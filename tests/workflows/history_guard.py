"""What the committed replay histories cover, and which workflow code they were captured from.

tests/workflows/histories/SOURCES.json maps each module of workflow code (the `workflows/` modules
defining a type registered in `workflows.worker.WORKFLOWS`, and the `workflows/` modules those import)
to a digest of its source when the histories were captured. The digest is of the syntax tree without
docstrings, so comment, docstring and formatting edits leave it alone while any change of code trips
tests/workflows/test_replay.py until the histories are captured again.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from temporalio import workflow

from tests.syntax_trees import parse, parse_many
from tests.workflows.helpers import HISTORIES, ROOT

SOURCES = HISTORIES / "SOURCES.json"
CAPTURE_HINT = (
    "re-capture with EXT_CAPTURE_HISTORIES=1 .venv/bin/python -m pytest -n 0 "
    "tests/workflows/test_replay.py (commit the histories and SOURCES.json), and use "
    "workflow.patched if the command sequence changed (list the label whose old history must stay "
    "in PRE_PATCH and record the patched branch under a new label)"
)
_DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def source_digest(source: str) -> str:
    """sha256 of the module's syntax tree without docstrings (comments are not in the tree)."""
    return _digest(parse(source))


def _digest(tree: ast.Module) -> str:
    return hashlib.sha256(_canonical(tree).encode()).hexdigest()


def _canonical(node: object) -> str:
    # Not ast.dump: its output differs between Python versions (3.13 leaves out empty fields), and
    # fields newer versions add are empty on older code; leaving out None and [] keeps one digest.
    if isinstance(node, list):
        return "[" + ",".join(_canonical(item) for item in node) + "]"
    if not isinstance(node, ast.AST):
        return repr(node)
    parts = []
    for name, value in ast.iter_fields(node):
        if name == "body" and isinstance(node, _DOCSTRING_OWNERS):
            value = _without_docstring(value)
        if value is None or (isinstance(value, list) and not value):
            continue
        parts.append(f"{name}={_canonical(value)}")
    return f"{type(node).__name__}({','.join(parts)})"


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return body[1:]
    return body


def workflow_type_name(cls: type) -> str:
    """The name a class decorated with `@workflow.defn` is registered under."""
    name = workflow._Definition.must_from_class(cls).name
    assert name is not None, f"{cls.__name__} is a dynamic workflow"
    return name


def workflow_modules(cls: type) -> set[str]:
    """Paths (relative to the repository) of the module defining `cls` and of every `workflows/`
    module it imports, transitively: the code its histories were recorded with."""
    pending = [cls.__module__]
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        tree = _tree_of(_module_path(module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                pending += [a.name for a in node.names if a.name.startswith("workflows.")]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("workflows."):
                    pending.append(node.module)
                elif node.module == "workflows":
                    pending += [f"workflows.{a.name}" for a in node.names]
    return {_module_path(m).relative_to(ROOT).as_posix() for m in seen}


@functools.cache
def _tree_of(source: str) -> ast.Module:
    # Keyed by the source, so an edited module is parsed again; each parse costs a child interpreter.
    return parse(source)


def _module_path(module: str) -> Path:
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None)
    return Path(path) if path else ROOT / (module.replace(".", "/") + ".py")


def current_sources(workflows: list[type]) -> dict[str, str]:
    """Digest of every module of workflow code, by path."""
    paths = sorted(set().union(*(workflow_modules(cls) for cls in workflows)))
    trees = parse_many([(p, (ROOT / p).read_text()) for p in paths])
    return {p: _digest(tree) for p, tree in zip(paths, trees, strict=True)}


def recorded_sources() -> dict[str, str]:
    if not SOURCES.exists():
        return {}
    recorded: dict[str, str] = json.loads(SOURCES.read_text())
    return recorded


def write_sources(workflows: list[type]) -> None:
    SOURCES.write_text(json.dumps(current_sources(workflows), indent=2, sort_keys=True) + "\n")


def stale_sources(workflows: list[type], recorded: dict[str, str] | None = None) -> list[str]:
    """One line per module whose digest differs from `recorded` (default: SOURCES.json), naming the
    histories it affects."""
    recorded = recorded_sources() if recorded is None else recorded
    current = current_sources(workflows)
    by_type = history_labels_by_type()
    problems = []
    for path in sorted(recorded.keys() | current.keys()):
        if recorded.get(path) == current.get(path):
            continue
        if path not in current:
            problems.append(f"{path} is no longer workflow code but is in SOURCES.json: {CAPTURE_HINT}")
            continue
        labels = sorted(
            label
            for cls in workflows
            if path in workflow_modules(cls)
            for label in by_type.get(workflow_type_name(cls), [])
        )
        what = "is new workflow code" if path not in recorded else "changed"
        problems.append(
            f"{path} {what} since its histories were captured ({', '.join(labels) or 'none yet'}): "
            f"{CAPTURE_HINT}"
        )
    return problems


def history_workflow_type(path: Path) -> str:
    """The workflow type a history records, from its first event."""
    name: str = _first_event(json.loads(path.read_text()))["workflowType"]["name"]
    return name


def _first_event(history: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = history["events"][0]["workflowExecutionStartedEventAttributes"]
    return attrs


def committed_histories() -> list[Path]:
    return sorted(p for p in HISTORIES.glob("*.json") if p != SOURCES)


def history_labels_by_type() -> dict[str, list[str]]:
    """Labels (file stems) of the committed histories, by the workflow type each records."""
    labels: dict[str, list[str]] = {}
    for path in committed_histories():
        labels.setdefault(history_workflow_type(path), []).append(path.stem)
    return labels


def patch_ids(history_json: str) -> set[str]:
    """The `workflow.patched` ids a history recorded (its `core_patch` markers)."""
    ids = set()
    for event in json.loads(history_json)["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker.get("markerName") == "core_patch":
            payload = marker["details"]["patch-data"]["payloads"][0]
            ids.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return ids
