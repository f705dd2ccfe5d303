"""Image dimensions from the header alone, checked against a pixel budget before any decoder runs.

Why: a 4 KB TIFF can declare 100000 x 100000 pixels and a 219 KB deflate TIFF 15000 x 15000 (3.5 GB
once decoded); a decoder asked to open either allocates first and fails (or succeeds) seconds
later. Pillow's `MAX_IMAGE_PIXELS` is the classic guard; this is ours, for every format we read.

TIFF headers are read with tifffile (its pages give shape and layout without decoding; the caller
keeps the open page to decode from). PNG and JPEG need no library: the PNG size is two integers at
a fixed offset of the IHDR chunk, which the PNG spec requires to come first, and the JPEG size is in
the first SOF marker segment, found by skipping segments by their length. Pillow would give the
same in one call, but it is not a runtime dependency, and twenty lines of spec-fixed parsing do not
justify one.
"""

from __future__ import annotations

import struct
from pathlib import Path

from bcdeploy.errors import ConfigError, InputError

DEFAULT_MAX_PIXELS = 80_000_000  # the largest mammograms are about 30 MP

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG extension) and CC (DAC) share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset([0x00, 0x01, *range(0xD0, 0xD8)])  # stuffed FF00, TEM, RST0..7: no length


def png_size(origin: Path, data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which must be the first chunk of every PNG; the chunk
    structure is checked first (check_png_chunks)."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise InputError(f"{origin}: PNG without an IHDR header chunk (truncated or corrupt file?)")
    check_png_chunks(origin, data)
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def check_png_chunks(origin: Path, data: bytes) -> None:
    """Every chunk's declared length fits in the file. libpng allocates what a chunk claims before it
    reads it: one chunk of a 786-byte file claiming 4 GiB made decoding take 4 GiB (found by the reader
    fuzzer). A walk over the chunk headers costs microseconds; IEND ends it."""
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        kind = data[offset + 4:offset + 8]
        if length > len(data) - offset - 12:  # length, type and CRC around the chunk's data
            raise InputError(f"{origin}: cannot decode PNG data: chunk {kind.decode('latin-1')!r} at byte {offset} "
                             f"claims {length:,} bytes, the file has {len(data) - offset - 12:,} left "
                             "(truncated or corrupt file?)")
        if kind == b"IEND":
            return
        offset += length + 12


def jpeg_size(origin: Path, data: bytes) -> tuple[int, int]:
    """(width, height) from the first SOF segment, walking the marker segments that precede it."""
    pos = 2  # after SOI
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:  # libjpeg skips extraneous bytes up to the next marker; so do we
            pos = data.find(b"\xff", pos)
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or SOS before any frame header
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if length < 2:
            break
        pos += 2 + length
    raise InputError(f"{origin}: JPEG without a frame header (SOF) before the image data (corrupt file?)")


def check_pixel_budget(origin: Path, width: int, height: int, max_pixels: int) -> None:
    """Refuse a declared size over the budget, before any decoder has allocated for it."""
    if max_pixels < 1:
        raise ConfigError(f"--max-pixels must be a positive number of pixels, got {max_pixels}")
    if width * height > max_pixels:
        raise InputError(
            f"{origin}: header declares {width}x{height} pixels ({width * height / 1e6:.1f} MP), over the "
            f"pixel budget of {max_pixels:,} ({max_pixels / 1e6:g} MP); refused before decoding. If the "
            f"image is genuine, raise the budget with --max-pixels {width * height}"
        )


def check_decoded_size(origin: Path, declared: tuple[int, int], decoded: tuple[int, int], *,
                       may_rotate: bool = False) -> None:
    """The decoder must give exactly the (width, height) the header declared.

    `may_rotate`: OpenCV applies a JPEG's EXIF or a TIFF's Orientation tag (as MMSeg gets it), which
    can swap width and height.
    """
    if decoded == declared or (may_rotate and decoded == declared[::-1]):
        return
    raise InputError(
        f"{origin}: header declares {declared[0]}x{declared[1]} pixels but the data decodes to "
        f"{decoded[0]}x{decoded[1]}; the file is inconsistent (corrupt or crafted), not used"
    )
