"""Collection fix for schemathesis' pytest integration (schemathesis 4.32 under pytest 9).

pytest 9 builds a test's node id from `originalname` and its callspec, so the one test per API
operation that `schema.parametrize()` makes all get the same id (`...::test_x`, no `[GET /v1/...]`).
Run alone that only hides which operation failed; under xdist, which schedules by node id, all but one
of them silently do not run. Each item gets its operation back as the id's parameter part.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        label = getattr(item, "operation_label", None)
        node_id = getattr(item, "_id", None)
        if label and node_id is not None and node_id.params is None:
            item._id = node_id.with_params(label)
    ids = [item.nodeid for item in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"tests with the same node id would not all run under xdist: {duplicates}"
