"""Checking an install config against its version's `config_schema`, with messages that never quote it.

jsonschema's own messages start with the rejected value (`'sk-live-…' is not of type 'integer'`), and a
config refusal travels far: into the Temporal failure of the install change (history and Temporal UI,
in clear: failure messages are not encrypted by the payload codec), the audit row, the API answer and
the CLI's error line. A config value may be a credential someone put in the wrong place, so each issue
here names the JSON path and what the schema demands, from the schema's side only.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

_SHOWN = 120  # schema text quoted in a message, at most (patterns, enums of a large schema)


def _schema_text(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _unexpected(instance: Any, schema: Any) -> list[str]:
    """Property names of `instance` that `additionalProperties: false` refuses (names, not values)."""
    if not isinstance(instance, dict) or not isinstance(schema, dict):
        return []
    declared = set(schema.get("properties") or {})
    patterns = [re.compile(p) for p in (schema.get("patternProperties") or {})]
    return sorted(k for k in instance if k not in declared and not any(p.search(k) for p in patterns))


def _message(err: jsonschema.ValidationError) -> str:
    rule, want = err.validator, err.validator_value
    if rule == "type":
        kinds = want if isinstance(want, list) else [want]
        return "must be of type " + " or ".join(str(k) for k in kinds)
    if rule == "required":
        present = err.instance if isinstance(err.instance, dict) else {}
        missing = [p for p in want if p not in present] if isinstance(want, list) else []
        return "missing required propert" + ("ies " if len(missing) > 1 else "y ") + ", ".join(missing)
    if rule == "additionalProperties" and want is False:
        names = _unexpected(err.instance, err.schema)
        return "unexpected propert" + ("ies " if len(names) > 1 else "y ") + ", ".join(names)
    if rule == "enum":
        return f"must be one of {_schema_text(want)}"
    if rule == "const":
        return f"must be {_schema_text(want)}"
    if rule == "pattern":
        return f"must match the pattern {_schema_text(want)}"
    if rule == "format":
        return f"must be a valid {want}"
    bounds = {
        "minimum": "must be >= {}",
        "maximum": "must be <= {}",
        "exclusiveMinimum": "must be > {}",
        "exclusiveMaximum": "must be < {}",
        "multipleOf": "must be a multiple of {}",
        "minLength": "must be at least {} characters long",
        "maxLength": "must be at most {} characters long",
        "minItems": "must have at least {} items",
        "maxItems": "must have at most {} items",
        "minProperties": "must have at least {} properties",
        "maxProperties": "must have at most {} properties",
    }
    if isinstance(rule, str) and rule in bounds:
        return bounds[rule].format(_schema_text(want))
    if rule == "uniqueItems":
        return "must not repeat items"
    return f"does not satisfy the schema's {rule!s} rule"


def schema_issues(instance: Any, schema: dict[str, Any]) -> list[dict[str, str]]:
    """Every way `instance` fails `schema`, as `{"path", "message"}` without any value of `instance`."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (e.json_path, str(e.validator)))
    return [{"path": e.json_path, "message": _message(e)} for e in errors]
