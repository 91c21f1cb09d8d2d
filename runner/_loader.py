"""Loading components by content hash, with an LRU bounded by bytes and single-flight loads.

A load (a miss) reads the bundle from the blob store, re-checks its sha256 against the content hash,
then deserializes the precompiled artifact for this engine's fingerprint (an mmap of the file,
milliseconds) or, when there is none, compiles `dist/main.wasm` (seconds) and stores the artifact
for the next process. Concurrent first requests for one hash wait for the same load.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import structlog
import wasmtime
from wasmtime.component import Component, ExportIndex

from bundles.blobstore import BlobStore, artifact_key, bundle_key
from bundles.errors import BlobNotFound, BundleError
from bundles.hashing import verify_content_hash
from bundles.unpack import WASM_PATH, unpack_bundle
from runner.compile import engine_fingerprint
from runner.errors import ModuleNotFound, ModuleRejected, RunnerError
from schema.capabilities import WIT_PACKAGE

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class Loaded:
    content_hash: str
    component: Component
    handler: ExportIndex
    wants_wasi: bool
    size: int
    precompiled: bool


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

    def get(self, content_hash: str) -> Loaded:
        """The loaded component for `content_hash`; raises ModuleNotFound / ModuleRejected."""
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
            loaded = self._load(content_hash)
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

    def _load(self, content_hash: str) -> Loaded:
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
        fingerprint = engine_fingerprint()
        akey = artifact_key(content_hash, fingerprint)
        component: Component | None = None
        size = 0
        if self._store.exists(akey):
            try:
                path = self._store.local_path(akey)
                if path is not None:
                    component = Component.deserialize_file(self._engine, str(path))
                    size = path.stat().st_size
                else:
                    data = self._store.get(akey)
                    component, size = Component.deserialize(self._engine, data), len(data)
            except (wasmtime.WasmtimeError, BlobNotFound) as exc:
                # A stale or damaged artifact is not fatal: compile from the verified bundle instead.
                log.warning("artifact_unusable", content_hash=content_hash, error=str(exc).splitlines()[0])
                component = None
        precompiled = component is not None
        if component is None:
            component, size = self._compile(bundle, content_hash, akey)
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

    def _compile(self, bundle: bytes, content_hash: str, akey: str) -> tuple[Component, int]:
        try:
            wasm = unpack_bundle(bundle)[WASM_PATH]
        except (BundleError, KeyError) as exc:
            raise ModuleRejected(f"bundle has no usable {WASM_PATH}: {exc}") from None
        try:
            component = Component(self._engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise ModuleRejected(f"not a valid component: {str(exc).splitlines()[0]}") from None
        artifact = bytes(component.serialize())
        try:
            self._store.put(akey, artifact)
        except (OSError, RunnerError) as exc:
            log.warning("artifact_store_failed", content_hash=content_hash, error=str(exc))
        return component, len(artifact)
