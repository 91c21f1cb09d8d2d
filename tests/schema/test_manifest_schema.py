"""The checked-in schema/manifest.schema.json is exactly what the manifest model generates."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from schema.manifest import manifest_json_schema
from tests.schema.test_manifest import CONTRACT_EXAMPLE

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema" / "manifest.schema.json"


def _rendered() -> str:
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n"


def test_checked_in_schema_matches_model() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == _rendered(), (
        "schema/manifest.schema.json is out of date with schema/manifest.py; regenerate it with `make schema`"
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    doc = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(doc)


def test_schema_accepts_the_contract_example_and_rejects_unknown_fields() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    assert list(validator.iter_errors(CONTRACT_EXAMPLE)) == []
    errors = list(validator.iter_errors({**CONTRACT_EXAMPLE, "homepage": "x"}))
    assert errors and "homepage" in errors[0].message
