"""`GET /ext-ui/{name}/{content_hash}/{path}`: a bundle's iframe UI (`ui/**`), served by content hash.

Who may ask: only holders of `x-runner-auth` (the gateway). The gateway has already checked that
(name, hash) is a published, verified, not revoked version (registry read, cached briefly); the runner
keeps no registry connection for this and re-checks what it can alone: the hash format, the bundle's
sha256 and that the bundle's manifest is named `name` (a hash cannot be served under another name).

Responses are immutable by construction (same hash → same bytes): `Cache-Control: public,
max-age=31536000, immutable`, an ETag from (hash, path) with 304 on `If-None-Match`, `nosniff`, and on
HTML a CSP that lets only the gateway origin frame the page and gives the UI no network access of its
own (`connect-src 'none'`): it talks to its handler through the host page's postMessage bridge.
Unpacked UI files are cached per content hash (a small LRU of bundles).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bundles.blobstore import BlobStore, bundle_key
from bundles.errors import BlobNotFound, BundleError
from bundles.hashing import verify_content_hash
from bundles.unpack import unpack_bundle
from schema.manifest import NAME_RE

log = structlog.get_logger(__name__)

HASH_RE = re.compile(r"^sha256:[0-9a-fA-F]{64}$")
_NAME = re.compile(NAME_RE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
UI_PREFIX = "ui/"
INDEX = "index.html"
IMMUTABLE = "public, max-age=31536000, immutable"
MAX_UI_PATH = 1024
MAX_DECODINGS = 4
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "htm": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "json": "application/json",
    "map": "application/json",
    "txt": "text/plain; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "ico": "image/x-icon",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "wasm": "application/wasm",
}


def frame_ancestors(gateway_url: str) -> str:
    """The CSP source allowed to frame UIs: the gateway's origin, or 'self' when none is configured
    (the gateway serves ext-ui on its own origin, so 'self' is that origin)."""
    if not gateway_url:
        return "'self'"
    parts = urlsplit(gateway_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"EXT_GATEWAY_URL {gateway_url!r} is not an http(s) URL")
    return f"{parts.scheme}://{parts.netloc}"


def ui_csp(gateway_url: str) -> str:
    return (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {frame_ancestors(gateway_url)}"
    )


def clean_path(raw: str) -> str | None:
    """The bundle-relative file path for a request path, or None when it must be refused: absolute,
    `.`/`..` or hidden segments, control characters, backslashes, also in any further percent-decoded
    form of a segment. Repeated slashes collapse."""
    if len(raw) > MAX_UI_PATH or raw.startswith("/") or "\\" in raw or _CONTROL.search(raw):
        return None
    segments = [s for s in raw.split("/") if s]
    if any(_unsafe_segment(s) for s in segments):
        return None
    return "/".join(segments) + ("/" if raw.endswith("/") and segments else "")


def _unsafe_segment(segment: str) -> bool:
    """A dot-leading segment (".", ".." and hidden files), or one that becomes one, or a slash or
    backslash, when percent-decoded again. The server decoded the path once; a double-encoded
    `%252e%252e` arrives here as `%2e%2e`, which any later hop would read as `..` (defence in depth: the
    gateway refuses all of these before forwarding)."""
    for _ in range(MAX_DECODINGS):
        if segment.startswith(".") or "/" in segment or "\\" in segment or _CONTROL.search(segment):
            return True
        if "%" not in segment:
            return False
        decoded = unquote(segment)
        if decoded == segment:
            return False
        segment = decoded
    return True  # still decoding: no UI file name is encoded that many times


@dataclass(frozen=True, slots=True)
class UiFile:
    body: bytes
    content_type: str
    etag: str


def _content_type(path: str) -> str:
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return CONTENT_TYPES.get(ext, "application/octet-stream")


class UiNotFound(Exception):
    pass


class UiBundles:
    """Unpacked `ui/**` of recently served bundles, keyed by content hash (LRU of `max_bundles`)."""

    def __init__(self, store: BlobStore, *, max_bundles: int = 32) -> None:
        self._store = store
        self._max = max_bundles
        self._entries: OrderedDict[str, dict[str, UiFile]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def files(self, name: str, content_hash: str) -> dict[str, UiFile]:
        key = f"{name}\0{content_hash}"
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:  # single flight: concurrent first requests unpack once
                hit = self._entries.get(key)
                if hit is None:
                    hit = await asyncio.to_thread(self._load, name, content_hash)
                    self._entries[key] = hit
                    while len(self._entries) > self._max:
                        self._entries.popitem(last=False)
                return hit
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    def _load(self, name: str, content_hash: str) -> dict[str, UiFile]:
        try:
            data = self._store.get(bundle_key(content_hash))
            verify_content_hash(data, content_hash)
            entries = unpack_bundle(data)
            manifest = json.loads(entries["manifest.json"])
        except BlobNotFound:
            raise UiNotFound(f"no bundle {content_hash}") from None
        except (BundleError, KeyError, ValueError) as exc:
            log.warning("ui_bundle_unusable", content_hash=content_hash, error=str(exc)[:200])
            raise UiNotFound(f"bundle {content_hash} is unusable") from None
        if not isinstance(manifest, dict) or manifest.get("name") != name:
            raise UiNotFound(f"bundle {content_hash} is not {name}")
        hexdigest = content_hash.removeprefix("sha256:")
        out: dict[str, UiFile] = {}
        for path, body in entries.items():
            if path.startswith(UI_PREFIX) and not path.endswith("/"):
                rel = path[len(UI_PREFIX) :]
                tag = hashlib.sha256(f"{content_hash}\0{rel}".encode()).hexdigest()[:24]
                out[rel] = UiFile(
                    body=body, content_type=_content_type(rel), etag=f'"{hexdigest[:16]}-{tag}"'
                )
        if INDEX not in out:
            raise UiNotFound(f"bundle {content_hash} has no {UI_PREFIX}{INDEX}")
        return out


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": code, "message": message}, status, headers={"cache-control": "no-store"})


def _matches(if_none_match: str, etag: str) -> bool:
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


class UiRoute:
    """`serve` is the Starlette endpoint of `/ext-ui/{name}/{content_hash}/{path:path}`."""

    def __init__(self, store: BlobStore, *, auth: bytes, gateway_url: str, max_bundles: int = 32) -> None:
        self.bundles = UiBundles(store, max_bundles=max_bundles)
        self._auth = auth
        self.csp = ui_csp(gateway_url)

    async def serve(self, request: Request) -> Response:
        given = request.headers.get("x-runner-auth", "").encode()
        if not hmac.compare_digest(given, self._auth):
            return _error(401, "unauthenticated", "bad or missing x-runner-auth")
        name: str = request.path_params["name"]
        content_hash: str = request.path_params["content_hash"]
        if not HASH_RE.match(content_hash):
            return _error(400, "invalid_content_hash", "content hash must be sha256:<64 hex>")
        content_hash = content_hash.lower()
        if not _NAME.match(name):
            return _error(404, "not_found", "no such extension UI")
        path = clean_path(request.path_params.get("path", ""))
        if path is None:
            return _error(400, "invalid_path", "invalid path")
        try:
            files = await self.bundles.files(name, content_hash)
        except UiNotFound as exc:
            return _error(404, "not_found", str(exc))
        served = files.get(path)
        if served is None:  # SPA fallback: directories, the root and unknown paths get the entry page
            served = files[INDEX]
        headers = {
            "etag": served.etag,
            "cache-control": IMMUTABLE,
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
        }
        if served.content_type.startswith("text/html"):
            headers["content-security-policy"] = self.csp
        inm = request.headers.get("if-none-match")
        if inm is not None and _matches(inm, served.etag):
            return Response(status_code=304, headers=headers)
        return Response(served.body, headers=headers, media_type=served.content_type)
