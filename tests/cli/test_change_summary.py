"""The one-line summary install commands print for a change."""

from __future__ import annotations

from typing import Any

from cli.commands.installs import change_summary


def _change(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenant_id": "acme",
        "extension": "com.extplane.hello",
        "version": "1.1.0",
        "previous_version": "1.0.0",
        "status": "active",
        "revision": 2,
        "changed": True,
        "workflow_id": "install/acme/com.extplane.hello/change/x",
        "ui_url": "http://ui",
    }
    return {**base, **fields}


def test_an_upgrade_shows_both_versions() -> None:
    assert (
        change_summary(_change()).splitlines()[0] == "acme: com.extplane.hello 1.0.0 -> 1.1.0 active (rev 2)"
    )


def test_an_uninstall_names_the_version_it_removed() -> None:
    out = change_summary(_change(version=None, previous_version="1.1.0", status="uninstalled", revision=12))
    assert out.splitlines()[0] == "acme: com.extplane.hello 1.1.0 uninstalled (rev 12)"
