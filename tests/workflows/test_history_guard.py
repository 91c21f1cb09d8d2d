"""The guard that keeps committed replay histories in step with the workflow code (history_guard.py)."""

from __future__ import annotations

from tests.workflows.helpers import HISTORIES
from tests.workflows.history_guard import (
    current_sources,
    patch_ids,
    source_digest,
    stale_sources,
    workflow_modules,
)
from workflows.install import InstallWorkflow
from workflows.tokens import CreateTokenWorkflow
from workflows.worker import WORKFLOWS

MODULE = '''"""A workflow module."""

from temporalio import workflow


@workflow.defn(name="Demo")
class Demo:
    """Runs one step."""

    @workflow.run
    async def run(self, n: int) -> int:
        """Adds one."""
        if workflow.patched("demo-patch"):
            return n + 1
        return n
'''


def test_comments_docstrings_and_formatting_leave_the_digest_alone() -> None:
    edited = (
        MODULE.replace('"""A workflow module."""', '"""Reworded, at length."""\n# a comment')
        .replace('"""Adds one."""', "# why: the caller counts from one")
        .replace("return n + 1", "return (\n                n + 1\n            )  # trailing comment")
    )
    assert source_digest(edited) == source_digest(MODULE)


def test_any_change_of_code_changes_the_digest() -> None:
    for old, new in [
        ("return n + 1", "return n + 2"),
        ('"demo-patch"', '"other-patch"'),
        ("        return n\n", "        await workflow.sleep(1)\n        return n\n"),
        ('name="Demo"', 'name="Demo2"'),
    ]:
        assert old in MODULE
        assert source_digest(MODULE.replace(old, new)) != source_digest(MODULE), new


def test_a_string_statement_after_the_docstring_is_code() -> None:
    edited = MODULE.replace('"""Adds one."""', '"""Adds one."""\n        "not a docstring"')
    assert source_digest(edited) != source_digest(MODULE)


def test_workflow_code_is_the_defining_module_and_its_workflows_imports() -> None:
    assert workflow_modules(InstallWorkflow) == {
        "workflows/install.py",
        "workflows/install_change.py",
        "workflows/_common.py",
    }
    assert workflow_modules(CreateTokenWorkflow) == {"workflows/tokens.py"}
    # The worker registers workflows but is none: editing it needs no new histories.
    assert "workflows/worker.py" not in current_sources(WORKFLOWS)


def test_a_changed_module_names_itself_its_histories_and_the_fix() -> None:
    recorded = current_sources(WORKFLOWS)
    assert stale_sources(WORKFLOWS, recorded) == []
    changed = {**recorded, "workflows/install.py": "0" * 64}
    [problem] = stale_sources(WORKFLOWS, changed)
    assert problem.startswith(
        "workflows/install.py changed since its histories were captured (install, install_content_hash): "
        "re-capture with EXT_CAPTURE_HISTORIES=1"
    )
    assert "workflow.patched" in problem
    # Shared workflow code affects every history of the types that import it.
    [common] = stale_sources(WORKFLOWS, {**recorded, "workflows/_common.py": "0" * 64})
    assert "install_change_set_debug" in common and "publish" in common and "create_token" not in common


def test_new_and_vanished_workflow_modules_are_reported() -> None:
    recorded = current_sources(WORKFLOWS)
    del recorded["workflows/tokens.py"]
    recorded["workflows/gone.py"] = "0" * 64
    gone, new = stale_sources(WORKFLOWS, recorded)  # sorted by path
    assert gone.startswith("workflows/gone.py is no longer workflow code")
    assert new.startswith(
        "workflows/tokens.py is new workflow code since its histories were captured "
        "(create_token, revoke_token)"
    )


def test_patch_ids_are_read_from_the_markers() -> None:
    assert patch_ids((HISTORIES / "install_content_hash.json").read_text()) == {"install-entity-content-hash"}
    assert patch_ids((HISTORIES / "install.json").read_text()) == set()
