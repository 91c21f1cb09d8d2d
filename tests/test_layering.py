"""The import arrows of ARCHITECTURE.md, enforced: every in-project import of every package module is
checked against the table; `registry.write` may be imported only by `activities/`; `runner/` is
imported by `activities/` only for compilation, and by `api/` only in its co-located hop
(`api.gateway.colocated` -> `runner.local`); nothing imports `api/`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.syntax_trees import parse_many

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schema", "core", "bundles", "registry", "activities", "workflows", "runner", "api", "cli")

ALLOWED: dict[str, set[str]] = {
    "schema": set(),
    "core": {"schema"},
    "bundles": {"schema", "core"},
    "registry": {"schema", "core"},
    "activities": {"schema", "core", "bundles", "registry", "runner"},
    "workflows": {"schema", "activities"},  # activities only as references, see below
    "runner": {"schema", "core", "bundles"},
    "api": {"schema", "core", "registry"},
    "cli": {"schema", "core", "bundles"},
}

# Finer rules inside the allowed arrows.
RUNNER_FOR_ACTIVITIES = {"runner", "runner.compile"}
WORKER_MODULE = "workflows.worker"
# Co-located mode (issue 14): one gateway module may run guests in-process through runner.local.
COLOCATED_MODULE = "api.gateway.colocated"
RUNNER_FOR_COLOCATED = {"runner", "runner.local", "runner.local.LocalRunner", "runner.local.Outcome"}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append((".".join(parts), path))
    return out


def _imports(tree: ast.Module, path: Path, module: str) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                is_pkg = path.name == "__init__.py"
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from registry import write` imports registry.write
            found.extend((f"{target}.{alias.name}", node.lineno) for alias in node.names)
    return found


def _violations() -> list[str]:
    bad: list[str] = []
    modules = _modules()
    trees = parse_many([(str(path), path.read_text()) for _module, path in modules])
    for (module, path), tree in zip(modules, trees, strict=True):
        pkg = module.split(".")[0]
        for target, line in _imports(tree, path, module):
            top = target.split(".")[0]
            if top not in PACKAGES or top == pkg:
                continue
            where = f"{path.relative_to(ROOT)}:{line} {module} -> {target}"
            if module == WORKER_MODULE and top in {"activities", "core"}:
                continue  # the worker wires workflows to activities (STYLE.md 1)
            if module == COLOCATED_MODULE and target in RUNNER_FOR_COLOCATED:
                continue
            if top not in ALLOWED[pkg]:
                bad.append(f"{where}: {pkg}/ may not import {top}/")
            elif target.startswith("registry.write") and pkg != "activities":
                bad.append(f"{where}: only activities/ may import registry.write")
            elif (
                pkg == "activities"
                and top == "runner"
                and target not in RUNNER_FOR_ACTIVITIES
                and not target.startswith("runner.compile")
            ):
                bad.append(f"{where}: activities/ may import runner only for compilation (runner.compile)")
    return bad


def test_every_package_exists() -> None:
    for pkg in PACKAGES:
        assert (ROOT / pkg / "__init__.py").exists(), pkg


def test_import_arrows_follow_architecture() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("api.x", "from registry import write", "only activities/ may import registry.write"),
        ("api.x", "import runner", "api/ may not import runner/"),
        ("api.x", "from runner.local import LocalRunner", "api/ may not import runner/"),
        ("schema.x", "from core.errors import ExtplaneError", "schema/ may not import core/"),
        ("workflows.publish", "import registry.read", "workflows/ may not import registry/"),
        (
            "activities.x",
            "from runner.app import create_app",
            "activities/ may import runner only for compilation",
        ),
    ],
)
def test_checker_catches_forbidden_arrows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, expected: str
) -> None:
    """The checker itself must fail on a bad arrow (a test that cannot fail proves nothing)."""
    pkg, name = module.split(".")
    fake_root = tmp_path
    for p in PACKAGES:
        (fake_root / p).mkdir()
        (fake_root / p / "__init__.py").write_text("")
    (fake_root / pkg / f"{name}.py").write_text(source + "\n")
    monkeypatch.setattr(f"{__name__}.ROOT", fake_root)
    found = _violations()
    assert any(expected in v for v in found), found
