"""Hostile uploads for the serve tests."""

from __future__ import annotations

import struct
import zlib


def huge_header_tiff(width: int = 100_000, height: int = 100_000, size: int = 4096) -> bytes:
    """A ~4 KB deflate TIFF whose header declares width x height 8-bit gray pixels."""
    payload = zlib.compress(bytes(64 * 1024))[: size - 200]
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1),
               (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, len(payload))]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = data_offset if tag == 273 else value
        ifd += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
    blob = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + payload
    return blob + bytes(max(0, size - len(blob)))
