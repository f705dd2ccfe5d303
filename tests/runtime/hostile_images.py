"""Seeded generators of image files whose header lies or whose decode would be huge.

Written byte by byte (TIFF, PNG) or patched from a real encoder's output (JPEG) so the files are
small and exact: the point is what the header declares, not what an encoder would agree to write.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

# TIFF tag ids and types used below (TIFF 6.0): SHORT=3, LONG=4.
_WIDTH, _LENGTH, _BITS, _COMPRESSION, _PHOTOMETRIC = 256, 257, 258, 259, 262
_STRIP_OFFSETS, _SAMPLES, _ROWS_PER_STRIP, _STRIP_BYTES = 273, 277, 278, 279
_DEFLATE = 8


def tiff_bytes(width: int, height: int, strips: list[bytes], *, rows_per_strip: int, compression: int = 1,
               extra_tags: list[tuple[int, int, int]] = ()) -> bytes:
    """A little-endian 8-bit grayscale TIFF with the given (already compressed) strips.

    `extra_tags`: (tag, type, value) entries appended after the standard ones, e.g. a second
    ImageWidth that some readers take and others ignore.
    """
    n = len(strips)
    data_start = 8
    offsets, pos = [], data_start
    for strip in strips:
        offsets.append(pos)
        pos += len(strip)
    arrays_at = pos + (pos & 1)
    counts_at = arrays_at + 4 * n
    ifd_at = counts_at + 4 * n
    many = n > 1
    tags = [
        (_WIDTH, 4, width), (_LENGTH, 4, height), (_BITS, 3, 8), (_COMPRESSION, 3, compression),
        (_PHOTOMETRIC, 3, 1), (_STRIP_OFFSETS, 4, arrays_at if many else offsets[0]), (_SAMPLES, 3, 1),
        (_ROWS_PER_STRIP, 4, rows_per_strip), (_STRIP_BYTES, 4, counts_at if many else len(strips[0])),
        *extra_tags,
    ]
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at))
    for strip in strips:
        out += strip
    out += b"\x00" * (arrays_at - len(out))
    out += struct.pack(f"<{n}I", *offsets) + struct.pack(f"<{n}I", *(len(s) for s in strips))
    out += struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        count = n if tag in (_STRIP_OFFSETS, _STRIP_BYTES) else 1
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + packed
    out += struct.pack("<I", 0)
    return bytes(out)


def tiny_tiff_declaring(path: Path, width: int = 100_000, height: int = 100_000, *, seed: int = 0,
                        size: int = 4096) -> Path:
    """A ~4 KB uncompressed TIFF whose header declares `width` x `height` pixels."""
    payload = np.random.default_rng(seed).integers(0, 256, size - 200, dtype=np.uint8).tobytes()
    path.write_bytes(tiff_bytes(width, height, [payload], rows_per_strip=height))
    return path


def deflate_bomb_tiff(path: Path, side: int = 15_000, *, seed: int = 0, rows_per_strip: int = 16) -> Path:
    """An honest deflate TIFF of `side` x `side` nearly-black pixels: ~220 KB on disk, side² bytes decoded.

    Every strip is compressed once and repeated, so writing it costs milliseconds.
    """
    rng = np.random.default_rng(seed)
    strip = np.zeros((rows_per_strip, side), np.uint8)
    strip[0, rng.integers(0, side, 8)] = rng.integers(1, 256, 8, dtype=np.uint8)
    packed = zlib.compress(strip.tobytes(), 9)
    n = -(-side // rows_per_strip)
    last = zlib.compress(strip[: side - (n - 1) * rows_per_strip].tobytes(), 9)
    path.write_bytes(tiff_bytes(side, side, [packed] * (n - 1) + [last], rows_per_strip=rows_per_strip,
                                compression=_DEFLATE))
    return path


def tiff_with_two_widths(path: Path, *, seed: int = 0, width: int = 64, height: int = 48,
                         second_width: int = 32) -> Path:
    """A valid 8-bit TIFF whose IFD repeats ImageWidth with another value (readers disagree which wins)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    path.write_bytes(tiff_bytes(width, height, [pixels.tobytes()], rows_per_strip=height,
                                extra_tags=[(_WIDTH, 4, second_width)]))
    return path


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def tiny_png_declaring(path: Path, width: int = 100_000, height: int = 100_000, *, seed: int = 0) -> Path:
    """A ~4 KB 8-bit grayscale PNG whose IHDR declares `width` x `height` pixels."""
    rows = np.random.default_rng(seed).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows))
                     + _png_chunk(b"IEND", b""))
    return path


def corrupt_png(path: Path, *, seed: int = 0, side: int = 64) -> Path:
    """A real PNG with its image data's bytes flipped: the decoder's own library complains on stderr."""
    import cv2

    pixels = np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)
    data = bytearray(cv2.imencode(".png", pixels)[1].tobytes())
    at = data.index(b"IDAT") + 20
    data[at : at + 16] = bytes(255 - b for b in data[at : at + 16])
    path.write_bytes(bytes(data))
    return path


def jpeg_declaring(path: Path, width: int = 65_000, height: int = 65_000, *, seed: int = 0) -> Path:
    """A real 64x64 JPEG whose SOF0 frame header is patched to declare `width` x `height`."""
    import cv2

    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8)
    data = bytearray(cv2.imencode(".jpg", pixels)[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path
