"""Everything a local or server-side check needs to know about an untrusted bundle, in one call.

`inspect_bundle` = content hash + safe unpack + manifest validation + UI entry present + component
check. It is what `extctl bundle inspect` prints and what publish runs before trusting anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from bundles.component import ComponentInfo, check_component
from bundles.errors import InvalidBundle
from bundles.hashing import content_hash, verify_content_hash
from bundles.manifest import read_manifest
from bundles.unpack import DEFAULT_LIMITS, MANIFEST_PATH, WASM_PATH, UnpackLimits, unpack_bundle
from schema.manifest import Manifest


@dataclass(frozen=True, kw_only=True)
class InspectedBundle:
    """A bundle that passed every local check."""

    content_hash: str
    size: int
    manifest: Manifest
    files: dict[str, bytes]
    component: ComponentInfo

    @property
    def wasm(self) -> bytes:
        return self.files[WASM_PATH]

    @property
    def manifest_bytes(self) -> bytes:
        return self.files[MANIFEST_PATH]


def inspect_bundle(
    data: bytes,
    *,
    expected_hash: str | None = None,
    limits: UnpackLimits = DEFAULT_LIMITS,
    check_wasm: bool = True,
) -> InspectedBundle:
    """Unpack and check an untrusted bundle.

    Args:
        data: the bundle bytes.
        expected_hash: when given, the bytes must hash to it (checked first, before unpacking).
        limits: unpack limits.
        check_wasm: run the component check (callers that compile right after may skip it).

    Raises:
        HashMismatch, InvalidBundle, UnsafeBundle, InvalidManifest: the first problem found.
    """
    digest = verify_content_hash(data, expected_hash) if expected_hash is not None else content_hash(data)
    files = unpack_bundle(data, limits=limits)
    manifest = read_manifest(files[MANIFEST_PATH])
    if manifest.ui is not None and manifest.ui.entry not in files:
        raise InvalidBundle(f"ui.entry {manifest.ui.entry!r} is not in the bundle")
    component = check_component(files[WASM_PATH]) if check_wasm else ComponentInfo(exports=(), imports=())
    return InspectedBundle(
        content_hash=digest, size=len(data), manifest=manifest, files=files, component=component
    )
