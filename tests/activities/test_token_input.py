"""The token activity's own input checks (the operator API checks first; other clients reach these)."""

from __future__ import annotations

import pytest

from activities.tokens import _validate
from core.errors import InvalidInput
from schema.payloads.tokens import StoreTokenInput


def test_unknown_scopes_are_counted_not_echoed() -> None:
    inp = StoreTokenInput(token_id="t", token_hash="ab" * 32, scopes=["admin", "sk-live-pasted-here"])
    with pytest.raises(InvalidInput) as info:
        _validate(inp)
    assert "1 given are not scopes" in info.value.message
    assert "sk-live-pasted-here" not in info.value.message
