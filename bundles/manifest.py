"""Reading `manifest.json` from a bundle or a directory, with errors in this package's tree.

schema.manifest cannot import core (it is the contracts leaf), so its `ManifestError` is a plain
ValueError; this is the one seam that turns it into `InvalidManifest` with the field paths kept in
`details["issues"]` for JSON callers.
"""

from __future__ import annotations

from bundles.errors import InvalidManifest
from schema.manifest import Manifest, ManifestError, parse_manifest_bytes


def read_manifest(raw: bytes) -> Manifest:
    """Decode and validate manifest bytes.

    Raises:
        InvalidManifest: not UTF-8 JSON, or a field is wrong; the message names every field path.
    """
    try:
        return parse_manifest_bytes(raw)
    except ManifestError as exc:
        issues = [{"path": issue.path, "message": issue.message} for issue in exc.issues]
        raise InvalidManifest(f"manifest.json is invalid: {exc}", details={"issues": issues}) from None
