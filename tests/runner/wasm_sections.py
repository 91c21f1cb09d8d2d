"""Just enough of the wasm binary format to compare two components: the core modules a component
embeds, their sections, and a core module's initial linear memory (its active data segments)."""

from __future__ import annotations

CORE_MODULE_SECTION = 1  # in a component
DATA_SECTION = 11  # in a core module
_I32_CONST, _END = 0x41, 0x0B


def _uleb(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _sleb(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return (value - (1 << shift) if byte & 0x40 else value), i


def sections(binary: bytes) -> list[tuple[int, bytes]]:
    """(section id, payload) of a module or component, in order (after the 8-byte preamble)."""
    out, i = [], 8
    while i < len(binary):
        size, start = _uleb(binary, i + 1)
        out.append((binary[i], binary[start : start + size]))
        i = start + size
    return out


def core_modules(component: bytes) -> list[bytes]:
    """The core modules a component embeds at its top level, in order."""
    return [payload for sid, payload in sections(component) if sid == CORE_MODULE_SECTION]


def data_image(module: bytes) -> bytes:
    """The module's initial memory: its active data segments (`i32.const` offsets) laid out flat."""
    segments: list[tuple[int, bytes]] = []
    for sid, payload in sections(module):
        if sid != DATA_SECTION:
            continue
        count, i = _uleb(payload, 0)
        for _ in range(count):
            flags, i = _uleb(payload, i)
            if flags != 0 or payload[i] != _I32_CONST:
                raise ValueError(f"unsupported data segment (flags {flags})")
            offset, i = _sleb(payload, i + 1)
            if payload[i] != _END:
                raise ValueError("unsupported data segment offset expression")
            size, i = _uleb(payload, i + 1)
            segments.append((offset, payload[i : i + size]))
            i += size
    image = bytearray(max((o + len(d) for o, d in segments), default=0))
    for offset, data in segments:
        image[offset : offset + len(data)] = data
    return bytes(image)
