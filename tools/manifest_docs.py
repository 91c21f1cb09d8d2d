"""Generate the reference part of docs/manifest.md from schema/manifest.schema.json.

    python -m tools.manifest_docs            # rewrite the generated section of docs/manifest.md
    python -m tools.manifest_docs --check    # exit 1 when it is out of date (tests/docker/test_docs.py)

`make docs` runs the first form. Only the text between the BEGIN/END markers is generated; the prose
around it is written by hand. The field table walks the JSON Schema (the contract publishers validate
against), resolving `$ref`s and optional (`anyOf` with null) fields; the capability table joins the
schema's enum with the summaries of `schema.capabilities.CATALOGUE`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from schema.capabilities import CATALOGUE, Capability

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "schema" / "manifest.schema.json"
DOC_FILE = ROOT / "docs" / "manifest.md"
BEGIN = "<!-- BEGIN GENERATED from schema/manifest.schema.json by `make docs`; do not edit -->"
END = "<!-- END GENERATED -->"

Schema = Mapping[str, Any]


def _resolve(node: Schema, root: Schema) -> Schema:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target: Schema = root["$defs"][ref.removeprefix("#/$defs/")]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _unwrap_nullable(node: Schema, root: Schema) -> tuple[Schema, bool]:
    """(`node` without a `null` alternative, whether null is allowed)."""
    options = node.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if o.get("type") != "null"]
        if len(rest) == 1 and len(rest) < len(options):
            merged = {**_resolve(rest[0], root), **{k: v for k, v in node.items() if k != "anyOf"}}
            return merged, True
    return _resolve(node, root), False


def _type(node: Schema, root: Schema) -> str:
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type", "any")
    if kind == "array":
        items = _resolve(node.get("items", {}), root)
        title = items.get("title")
        if title and "enum" in items:
            return f"array of {title} (table below)"
        inner = title if items.get("type") == "object" and title else _type(items, root)
        return f"array of {inner}"
    if kind == "object" and node.get("title") and "properties" in node:
        return f"object ({node['title']})"
    return str(kind)


def _constraints(node: Schema, root: Schema) -> str:
    parts: list[str] = []
    for key, label in (
        ("minimum", ">="),
        ("maximum", "<="),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ):
        if key in node:
            parts.append(f"{label} {node[key]}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    if node.get("type") == "array":
        items = _resolve(node.get("items", {}), root)
        if items.get("type") != "object":
            inner = _constraints(items, root)
            if inner:
                parts.append(f"each item: {inner}")
    if node.get("additionalProperties") is False:
        parts.append("no other fields")
    return "; ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(node: Schema, root: Schema, prefix: str) -> Iterator[tuple[str, ...]]:
    required = set(node.get("required", []))
    for name, raw in node.get("properties", {}).items():
        prop, nullable = _unwrap_nullable(raw, root)
        path = f"{prefix}{name}"
        default = json.dumps(prop["default"]) if "default" in prop else ""
        yield (
            f"`{path}`",
            _type(prop, root) + (" or null" if nullable else ""),
            "yes" if name in required else "no",
            f"`{default}`" if default else "",
            _constraints(prop, root),
            prop.get("description", ""),
        )
        if prop.get("type") == "object" and "properties" in prop:
            yield from _rows(prop, root, f"{path}.")
        items = _resolve(prop.get("items", {}), root) if prop.get("type") == "array" else {}
        if items.get("type") == "object" and "properties" in items:
            yield from _rows(items, root, f"{path}[].")


def render(schema: Schema) -> str:
    """The generated section (without markers)."""
    dialect = str(schema.get("$schema", "")).rstrip("/").split("/")[-2:-1] or [""]
    lines = [
        f"Schema `{schema.get('$id', '')}` (JSON Schema {dialect[0]}).",
        "Unknown fields are rejected at every level.",
        "",
        "| field | type | required | default | constraints | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in _rows(schema, schema, ""):
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    caps = _resolve({"$ref": "#/$defs/Capability"}, schema).get("enum", [])
    lines += [
        "",
        "Capabilities (`capabilities[]`):",
        "",
        "| capability | host interface | grants |",
        "| --- | --- | --- |",
    ]
    for cap in caps:
        info = CATALOGUE[Capability(cap)]
        iface = f"`{info.interface}`" if info.interface else "(none)"
        lines.append(f"| `{cap}` | {iface} | {_cell(info.summary)} |")
    return "\n".join(lines) + "\n"


def splice(document: str, section: str) -> str:
    """`document` with the text between the markers replaced by `section`."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"markers not found: add the lines\n{BEGIN}\n{END}")
    return document[: start + len(BEGIN)] + "\n" + section + document[end:]


def load_schema(path: Path = SCHEMA_FILE) -> Schema:
    data: Schema = json.loads(path.read_text())
    return data


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.manifest_docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/manifest.md is stale")
    args = parser.parse_args(argv)
    current = DOC_FILE.read_text()
    wanted = splice(current, render(load_schema()))
    if args.check:
        if wanted != current:
            print("docs/manifest.md is out of date: run `make docs`", file=sys.stderr)  # noqa: T201
            raise SystemExit(1)
        return
    if wanted != current:
        DOC_FILE.write_text(wanted)


if __name__ == "__main__":
    main()
