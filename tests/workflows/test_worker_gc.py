"""The worker pauses the cyclic collector while its workflows are validated (CPython gh-91351)."""

from __future__ import annotations

import gc

from workflows.worker import _no_cyclic_gc


def test_the_collector_is_paused_and_restored() -> None:
    assert gc.isenabled()
    with _no_cyclic_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    try:
        with _no_cyclic_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_when_validation_fails() -> None:
    try:
        with _no_cyclic_gc():
            raise RuntimeError("Failed validating workflow")
    except RuntimeError:
        pass
    assert gc.isenabled()
