"""Fuzzing bundles.unpack: on any input, `unpack_bundle` returns files or raises a BundleError subclass
(never TarError, ValueError, zstd errors...), and `extract_to` writes nothing outside its target: the
whole temporary tree around the target is walked before and after every example.

Inputs: tar archives with hostile members ('..', absolute, backslashes, links, devices, fifos, sparse
and unknown types, duplicates and case duplicates, long names, hostile pax records), random bytes,
random zstd frames, and truncated or mutated valid bundles (at the zstd and at the tar layer).
Archives are built with tarfile + zstandard directly, never with bundles.pack.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import zstandard
from hypothesis import currently_in_test_context, event, given, reject
from hypothesis import strategies as st

from bundles.errors import BundleError
from bundles.inspect import inspect_bundle
from bundles.unpack import REQUIRED_ENTRIES, UnpackLimits, check_entry_name, extract_to, unpack_bundle
from tests.bundles.bundle_helpers import COMPONENT, archive, file_entries, manifest_bytes, raw_tar, zst
from tests.fuzz.fuzz_helpers import FUZZ, scaled

VALID_TAR = raw_tar(file_entries())
VALID_BUNDLE = zst(VALID_TAR)
# Small limits so the size, count and ratio checks are reachable by small examples too.
TIGHT = UnpackLimits(max_entries=12, max_total_bytes=64 * 1024, max_ratio=20.0, ratio_floor_bytes=4096)


def _tree(root: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """Every path under `root` with its kind and content (files) or target (links), not following links."""
    out: dict[str, tuple[str, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(mode):
                out[rel] = ("dir", None)
            elif stat.S_ISREG(mode):
                out[rel] = ("file", path.read_bytes())
            else:
                out[rel] = ("other", None)
    return out


def _event(label: str) -> None:
    if currently_in_test_context():  # --hypothesis-show-statistics: how often each outcome occurs
        event(label)


def check_bundle(data: bytes, limits: UnpackLimits | None = None) -> dict[str, bytes] | None:
    """The properties, for one input; returns the accepted files or None when refused."""
    kwargs: dict[str, Any] = {} if limits is None else {"limits": limits}
    try:
        files = unpack_bundle(data, **kwargs)
    except BundleError as exc:
        assert str(exc)
        _event(f"refused: {type(exc).__name__}")
        files = None
    else:
        _event("accepted")
    if files is not None:
        for name in files:
            assert check_entry_name(name) == name
            assert name in REQUIRED_ENTRIES or name.startswith("ui/"), name
        assert all(required in files for required in REQUIRED_ENTRIES)
    with tempfile.TemporaryDirectory(prefix="fuzz-extract-") as tmp:
        root = Path(tmp)
        box = root / "a" / "b" / "c"  # '..' up to four levels from the target stays inside `root`
        box.mkdir(parents=True)
        (box / "sentinel").write_bytes(b"s")
        (root / "a" / "sentinel").write_bytes(b"s")
        target = box / "out"
        before = _tree(root)
        try:
            written = extract_to(data, target, **kwargs)
        except BundleError:
            written = None
        after = _tree(root)
        assert (written is None) == (files is None)
        if written is None:
            assert after == before, "a refused bundle changed the disk"
            return None
        assert written == files
        prefix = "a/b/c/out"
        added = {k: v for k, v in after.items() if k not in before}
        assert {k: v for k, v in after.items() if k in before} == before, "a pre-existing path changed"
        assert all(k == prefix or k.startswith(prefix + "/") for k in added), sorted(added)
        expected_files = {f"{prefix}/{name}": ("file", content) for name, content in written.items()}
        assert {k: v for k, v in added.items() if v[0] != "dir"} == expected_files
        return written


# ----------------------------------------------------------------------------------- strategies
SEGMENTS = st.sampled_from(
    [
        "ui",
        "dist",
        "main.wasm",
        "manifest.json",
        "index.html",
        "UI",
        "Manifest.JSON",
        "..",
        ".",
        "",
        ".hidden",
        "a\\b",
        "..\\..\\x",
        "C:",
        "c:\\windows",
        "x" * 300,
        "\x00",
        "\x1b[31m",
        "\x7f",
        "é",
        "e\u0301",
        "\udcff",
        "ﬀ",
        "ß",
        "SS",
    ]
)
NAMES = st.one_of(
    st.sampled_from(["ui/a.js", "ui/sub/b.css", "ui/ü.txt", "ui", "dist", "ui/sub"]),
    st.lists(SEGMENTS, min_size=1, max_size=4).map("/".join),
    st.lists(SEGMENTS, min_size=1, max_size=3).map(lambda s: "/" + "/".join(s)),
    st.sampled_from(
        [
            "../escape",
            "../../../../escape",
            "/etc/passwd",
            "/tmp/fuzz-escape",
            "ui/../../escape",
            "ui/./x",
            "ui//x",
            "ui/",
            "dist/main.wasm/",
            "manifest.json/x",
            "ui/" + "a/" * 200 + "x",
            "ui/" + "y" * 600,
        ]
    ),
    st.text(min_size=1, max_size=30),
)
TYPES = st.sampled_from(
    [
        tarfile.REGTYPE,
        tarfile.AREGTYPE,
        tarfile.DIRTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.CHRTYPE,
        tarfile.BLKTYPE,
        tarfile.FIFOTYPE,
        tarfile.CONTTYPE,
        tarfile.GNUTYPE_SPARSE,
        b"X",
        b"V",
        b"Z",
    ]
)
PAX_KEYS = st.sampled_from(
    [
        "path",
        "linkpath",
        "size",
        "mtime",
        "uid",
        "hdrcharset",
        "comment",
        "GNU.sparse.map",
        "GNU.sparse.size",
        "GNU.sparse.major",
        "GNU.sparse.minor",
        "GNU.sparse.name",
        "GNU.sparse.realsize",
        "GNU.sparse.offset",
        "GNU.sparse.numbytes",
    ]
)
PAX_VALUES = st.one_of(
    st.sampled_from(["0", "1", "-1", "1,2", "a,b", "0,0,0", "99999999999", "../x", "BINARY", ""]),
    st.text(max_size=12),
)


@st.composite
def members(draw: st.DrawFn) -> tuple[str, bytes, bytes, str, dict[str, str]]:
    benign: bool = draw(st.integers(0, 3)) == 0  # a quarter are plain files under ui/: accepted ones
    name = draw(st.sampled_from(["ui/a.js", "ui/sub/b.css", "ui/ü.txt", "ui/x"])) if benign else draw(NAMES)
    kind = tarfile.REGTYPE if benign else draw(TYPES)
    data = draw(st.one_of(st.just(b""), st.binary(max_size=64), st.just(b"\0" * 5000)))
    linkname = draw(st.one_of(st.just(""), NAMES))
    pax = draw(st.dictionaries(PAX_KEYS, PAX_VALUES, max_size=3)) if draw(st.booleans()) else {}
    return name, kind, data, linkname, pax


def _build_tar(base: list[tuple[str, bytes]], extra: list[Any], fmt: int, positions: list[int]) -> bytes:
    buf = io.BytesIO()
    items: list[Any] = [(name, tarfile.REGTYPE, data, "", {}) for name, data in base]
    for member, pos in zip(extra, positions, strict=True):
        items.insert(min(pos, len(items)), member)
    try:
        with tarfile.open(
            fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape"
        ) as tar:
            for name, kind, data, linkname, pax in items:
                info = tarfile.TarInfo(name)
                info.type = kind
                info.linkname = linkname
                if fmt == tarfile.PAX_FORMAT:
                    info.pax_headers = pax
                if kind in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.addfile(info)
    except (ValueError, UnicodeError, tarfile.TarError):
        reject()  # tarfile cannot write it (e.g. a long name in ustar): not an input we can build
    return buf.getvalue()


@st.composite
def hostile_archives(draw: st.DrawFn) -> bytes:
    with_valid_entries = draw(st.booleans())
    base: list[tuple[str, bytes]] = [(e.name, e.data) for e in file_entries()] if with_valid_entries else []
    add_duplicate: bool = draw(st.booleans())
    if base and add_duplicate:  # duplicates of real entries, by exact name or by case
        dup = draw(st.sampled_from(base))
        base.append((draw(st.sampled_from([dup[0], dup[0].upper(), dup[0].title()])), b"dup"))
    extra = draw(st.lists(members(), min_size=0 if base else 1, max_size=4))
    positions = draw(st.lists(st.integers(0, 8), min_size=len(extra), max_size=len(extra)))
    fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
    tar = _build_tar(base, extra, fmt, positions)
    return zst(tar, level=draw(st.sampled_from([1, 3, 19])))


@st.composite
def mutated_bundles(draw: st.DrawFn) -> bytes:
    layer = draw(st.sampled_from(["zstd", "tar"]))
    raw = bytearray(VALID_BUNDLE if layer == "zstd" else VALID_TAR)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        pos = draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and raw:
            raw[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del raw[pos : pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del raw[pos:]
        elif op == "append":
            raw += draw(st.binary(min_size=1, max_size=16))
    return bytes(raw) if layer == "zstd" else zst(bytes(raw))


@st.composite
def zstd_frames(draw: st.DrawFn) -> bytes:
    payload = draw(
        st.one_of(st.binary(max_size=2048), st.just(VALID_TAR + b"\0" * 10_000), st.just(b"\0" * 300_000))
    )
    compressor = zstandard.ZstdCompressor(
        level=draw(st.integers(1, 5)),
        write_checksum=draw(st.booleans()),
        write_content_size=draw(st.booleans()),
    )
    frame = compressor.compress(payload)
    tail = draw(st.sampled_from([b"", b"\0", frame, b"\x28\xb5\x2f\xfd", b"garbage"]))
    return frame + tail


# ----------------------------------------------------------------------------------------- tests
def test_the_valid_bundle_is_accepted_and_extracted() -> None:
    files = check_bundle(VALID_BUNDLE)
    assert files is not None and "dist/main.wasm" in files


def test_regression_gnu_sparse_pax_records() -> None:
    """tarfile raised a bare ValueError on malformed GNU.sparse.* pax records; now InvalidBundle."""
    for pax in (
        {"GNU.sparse.map": "a,b"},
        {"GNU.sparse.size": "zz"},
        {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"},
    ):
        base = [(e.name, e.data) for e in file_entries()]
        data = zst(_build_tar(base, [("ui/x", tarfile.REGTYPE, b"abc", "", pax)], tarfile.PAX_FORMAT, [9]))
        assert check_bundle(data) is None


@FUZZ
@given(hostile_archives())
def test_hostile_tar_members(data: bytes) -> None:
    check_bundle(data)


@scaled(100)
@given(hostile_archives())
def test_hostile_tar_members_tight_limits(data: bytes) -> None:
    check_bundle(data, TIGHT)


@FUZZ
@given(mutated_bundles())
def test_truncated_and_mutated_valid_bundles(data: bytes) -> None:
    check_bundle(data)


@scaled(200)
@given(zstd_frames())
def test_random_zstd_frames(data: bytes) -> None:
    check_bundle(data)
    check_bundle(data, TIGHT)


@scaled(200)
@given(st.one_of(st.binary(max_size=512), st.binary(max_size=512).map(lambda b: b"\x28\xb5\x2f\xfd" + b)))
def test_random_bytes(data: bytes) -> None:
    check_bundle(data)


def test_archive_helper_round_trip() -> None:
    """The helpers build what unpack accepts (guards the strategies against testing nothing)."""
    assert check_bundle(archive(file_entries())) is not None


# ------------------------------------------------------------------- the whole local check (inspect)
@st.composite
def bundles_with_mutated_contents(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A well-formed archive whose manifest and/or component bytes are mutated; and whether to run the
    component check (wasm-tools, a subprocess: drawn for a minority of examples)."""
    manifest = bytearray(manifest_bytes())
    wasm = bytearray(COMPONENT)
    for target in draw(st.lists(st.sampled_from(["manifest", "wasm"]), min_size=1, max_size=4)):
        raw = manifest if target == "manifest" else wasm
        if not raw:  # an earlier delete may have emptied it: there is no position left to draw
            raw.extend(draw(st.binary(min_size=1, max_size=8)))
            continue
        pos = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["flip", "delete", "truncate", "insert"]))
        if op == "flip":
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del raw[pos : pos + draw(st.integers(1, 32))]
        elif op == "truncate":
            del raw[max(pos, 1) :]
        else:
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    data = archive(file_entries({"manifest.json": bytes(manifest), "dist/main.wasm": bytes(wasm)}))
    return data, draw(st.integers(0, 4)) == 0


@scaled(100)
@given(bundles_with_mutated_contents())
def test_inspect_bundle_with_mutated_manifest_and_component(case: tuple[bytes, bool]) -> None:
    data, check_wasm = case
    try:
        inspected = inspect_bundle(data, check_wasm=check_wasm)
    except BundleError as exc:
        _event(f"refused: {type(exc).__name__}")
        return
    _event("accepted")
    assert inspected.content_hash.startswith("sha256:")
    # Only the component check looks at main.wasm (the publish workflow always runs it); skipped, even an
    # emptied file passes here and fails at compile.
    assert inspected.wasm.startswith(b"\0asm") or not check_wasm
