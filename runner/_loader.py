"""Loading components by content hash, with an LRU bounded by bytes and single-flight loads.

A load (a miss) reads the bundle from the blob store and re-checks its sha256 against the content hash.
Then, when the envelope carries the registry's record of the precompiled artifact for this engine's
fingerprint (`ExecuteRequest.artifacts`), the artifact is copied into a private temporary directory
(mode 0700, this process only) while being hashed, and the copy is deserialized if its size and sha256
are the recorded ones (an mmap of the file: tens of milliseconds, and only the pages used become
resident). The bytes checked are thus the bytes mapped, whatever happens to the blob store's file
meanwhile; the copy is unlinked at once (the mapping keeps it). A deserialized artifact is native code
with no validation of its own, so an artifact without a record, with another hash (a blob store
written by someone else) or that does not load is never used: the runner compiles `dist/main.wasm`
from the hash-checked bundle in memory instead (seconds). The runner only reads the blob store; the
publish workflow is what writes artifacts. Concurrent first requests for one hash wait for the same
load.
"""

from __future__ import annotations

import hashlib
import hmac
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import structlog
import wasmtime
from wasmtime.component import Component, ExportIndex

from bundles.blobstore import BlobStore, artifact_key, bundle_key
from bundles.errors import BlobNotFound, BundleError
from bundles.hashing import verify_content_hash
from bundles.unpack import WASM_PATH, unpack_bundle
from runner._adapter import Signature
from runner.compile import engine_fingerprint
from runner.errors import ModuleNotFound, ModuleRejected
from schema.capabilities import WIT_PACKAGE
from schema.envelope import ArtifactDigest

log = structlog.get_logger(__name__)
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Loaded:
    content_hash: str
    component: Component
    handler: ExportIndex
    wants_wasi: bool
    size: int
    precompiled: bool
    # The handler's types, read at its first call and reused by every later one (runner._adapter).
    signature: Signature = field(default_factory=Signature, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class CacheStats:
    hits: int
    misses: int
    bytes: int
    entries: int


def _check_world(engine: wasmtime.Engine, component: Component) -> tuple[ExportIndex, bool]:
    """Refuse components that import outside our world, or lack the `handler` export."""
    imports = component.type.imports(engine)
    for name in imports:
        if not name.startswith((f"{WIT_PACKAGE}/", "wasi:")):
            raise ModuleRejected(f"component imports {name!r}, which is not part of the extplane world")
    handler = component.get_export_index("handler")
    if handler is None:
        raise ModuleRejected("component does not export `handler`")
    return handler, any(name.startswith("wasi:") for name in imports)


class ComponentCache:
    def __init__(
        self,
        engine: wasmtime.Engine,
        store: BlobStore,
        *,
        max_bytes: int,
        on_load: Callable[[bool, float], None] | None = None,
    ) -> None:
        self._engine = engine
        self._store = store
        self._max_bytes = max_bytes
        self._on_load = on_load
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Loaded] = OrderedDict()
        self._loading: dict[str, Future[Loaded]] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits, misses=self._misses, bytes=self._bytes, entries=len(self._entries)
            )

    def get(self, content_hash: str, *, artifacts: Mapping[str, ArtifactDigest] | None = None) -> Loaded:
        """The loaded component for `content_hash`; raises ModuleNotFound / ModuleRejected.

        Args:
            content_hash: the bundle's content hash.
            artifacts: the registry's records of its precompiled artifacts by engine fingerprint (the
                envelope's `artifacts`); only an artifact matching the record for this engine is used.
        """
        with self._lock:
            hit = self._entries.get(content_hash)
            if hit is not None:
                self._entries.move_to_end(content_hash)
                self._hits += 1
                return hit
            self._misses += 1
            pending = self._loading.get(content_hash)
            leader = pending is None
            if pending is None:
                pending = self._loading[content_hash] = Future()
        if not leader:
            return pending.result()
        try:
            loaded = self._load(content_hash, (artifacts or {}).get(engine_fingerprint()))
        except BaseException as exc:
            with self._lock:
                del self._loading[content_hash]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._loading[content_hash]
            self._entries[content_hash] = loaded
            self._bytes += loaded.size
            while self._bytes > self._max_bytes and len(self._entries) > 1:
                _, old = self._entries.popitem(last=False)
                self._bytes -= old.size
        pending.set_result(loaded)
        return loaded

    def _load(self, content_hash: str, digest: ArtifactDigest | None) -> Loaded:
        try:
            bundle = self._store.get(bundle_key(content_hash))
        except BlobNotFound:
            raise ModuleNotFound(f"no bundle for {content_hash}") from None
        except BundleError as exc:  # malformed hash
            raise ModuleNotFound(str(exc)) from None
        try:
            verify_content_hash(bundle, content_hash)
        except BundleError as exc:
            raise ModuleRejected(str(exc)) from None
        loaded = self._deserialize(content_hash, digest) if digest is not None else None
        precompiled = loaded is not None
        component, size = loaded if loaded is not None else self._compile(bundle)
        handler, wants_wasi = _check_world(self._engine, component)
        if self._on_load is not None:
            self._on_load(precompiled, float(size))
        log.info("component_loaded", content_hash=content_hash, precompiled=precompiled, size=size)
        return Loaded(
            content_hash=content_hash,
            component=component,
            handler=handler,
            wants_wasi=wants_wasi,
            size=size,
            precompiled=precompiled,
        )

    def _deserialize(self, content_hash: str, digest: ArtifactDigest) -> tuple[Component, int] | None:
        """The recorded artifact, or None (then the caller compiles): missing, mismatched, stale."""
        akey = artifact_key(content_hash, engine_fingerprint())
        with tempfile.TemporaryDirectory(prefix="extplane-artifact-") as private:
            copy = Path(private) / "artifact.cwasm"
            try:
                sha256, size = self._copy_hashed(akey, copy, limit=digest.size)
            except (BlobNotFound, OSError):
                log.warning("artifact_missing", content_hash=content_hash)
                return None
            if size != digest.size or not hmac.compare_digest(sha256, digest.sha256):
                log.warning("artifact_rejected", content_hash=content_hash, reason="sha256 or size mismatch")
                return None
            try:
                return Component.deserialize_file(self._engine, str(copy)), size
            except wasmtime.WasmtimeError as exc:
                # The recorded artifact of another engine build (same fingerprint): compile instead.
                log.warning("artifact_unusable", content_hash=content_hash, error=str(exc).splitlines()[0])
                return None

    def _copy_hashed(self, akey: str, dst: Path, *, limit: int) -> tuple[str, int]:
        """Copy the artifact to `dst`, hashing exactly the bytes written; stops one byte past `limit`
        (a larger file cannot match its record). Returns (sha256 hex, bytes copied)."""
        digest = hashlib.sha256()
        size = 0
        src = self._store.local_path(akey)  # a local store raises BlobNotFound when it is absent
        with dst.open("xb") as out:
            if src is None:  # a remote store: the bytes come whole
                data = self._store.get(akey)[: limit + 1]
                digest.update(data)
                out.write(data)
                return digest.hexdigest(), len(data)
            with src.open("rb") as inp:
                while size <= limit and (chunk := inp.read(min(_COPY_CHUNK, limit + 1 - size))):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        return digest.hexdigest(), size

    def _compile(self, bundle: bytes) -> tuple[Component, int]:
        try:
            wasm = unpack_bundle(bundle)[WASM_PATH]
        except (BundleError, KeyError) as exc:
            raise ModuleRejected(f"bundle has no usable {WASM_PATH}: {exc}") from None
        try:
            component = Component(self._engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise ModuleRejected(f"not a valid component: {str(exc).splitlines()[0]}") from None
        # The LRU counts a component by its artifact's size (what it costs loaded); nothing is stored.
        return component, len(component.serialize())
