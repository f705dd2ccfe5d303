"""Write masks and pictures atomically (encode in memory, then one rename), and choose which to write.

PNG is lossless, so any encoder that decodes back to the same array is as good as another; the
fastest wins. imagecodecs' libpng binding with no row filter and deflate level 1 encodes a full-size
DMID mask (2864x4432, uint8) ~5x faster than OpenCV's PNG writer (adaptive row filters, which cost
most of its time on masks), into a ~4x smaller file (benchmarks/encode_bench.py). OpenCV stays the
fallback for what imagecodecs cannot take, and writes every JPEG: JPEG is lossy, so changing its
encoder would change the overlays people already compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bcdeploy.errors import InputError
from bcdeploy.fileio import write_bytes

# `--save` names -> the keys of the run loop's output_paths(): masks/ holds the class-index PNGs.
SAVE_CHOICES = {"masks": "mask", "biner": "biner", "vis": "vis"}
ALL_OUTPUTS = frozenset(SAVE_CHOICES.values())
# deflate level 1, no row filter, run-length matching: masks are long runs of one value. The row
# filters cost ~4x the time and give nothing on masks; Z_RLE makes the file ~4x smaller at the same
# speed (benchmarks/encode_bench.py).
PNG_LEVEL = 1
PNG_FILTER_NONE = 0x08  # libpng's PNG_FILTER_NONE bit: filter type 0 on every row
Z_RLE = 3  # zlib strategy


def parse_save(value: str | Iterable[str] | None) -> frozenset[str]:
    """`--save masks,vis,biner` -> the output_paths() keys to write ({'mask', 'vis', 'biner'}).

    None or "all" means every output (the default, as before). Names may repeat or come as a list;
    an unknown or empty selection is an error, not a silent run that writes nothing.
    """
    if value is None:
        return ALL_OUTPUTS
    items = value.split(",") if isinstance(value, str) else [part for v in value for part in str(v).split(",")]
    names = {item.strip().lower() for item in items if item.strip()}
    if names == {"all"}:
        return ALL_OUTPUTS
    unknown = sorted(names - set(SAVE_CHOICES))
    if unknown or not names:
        asked = ",".join(sorted(names)) or "nothing"
        raise InputError(f"--save {asked}: unknown output {', '.join(unknown) or '(empty)'}; choose from "
                         f"{','.join(SAVE_CHOICES)} (comma-separated) or all")
    return frozenset(SAVE_CHOICES[name] for name in names)


def encode(array: np.ndarray, suffix: str, quality: int = 90) -> bytes:
    """Encode as OpenCV would (3/4-channel arrays are BGR/BGRA); PNGs go through imagecodecs when
    it is installed and takes the array."""
    if suffix == ".png":
        if array.dtype not in (np.uint8, np.uint16):
            # OpenCV would cast to uint8 with a warning: a mask must never be rewritten silently
            raise InputError(f"cannot encode a {array.shape} {array.dtype} array as PNG (needs uint8 or uint16)")
        data = _png_imagecodecs(array)
        if data is not None:
            return data
    return encode_opencv(array, suffix, quality)


def encode_opencv(array: np.ndarray, suffix: str, quality: int = 90) -> bytes:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL]
    try:
        ok, buf = cv2.imencode(suffix, array, params)
    except cv2.error:
        ok = False
    if not ok:
        raise InputError(f"cannot encode a {array.shape} {array.dtype} array as {suffix}")
    return buf.tobytes()


def _png_imagecodecs(array: np.ndarray) -> bytes | None:
    """PNG bytes from libpng via imagecodecs, or None when it is missing or the array is not an
    8/16-bit gray, BGR or BGRA image (the caller then uses OpenCV)."""
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        return None
    try:
        import imagecodecs
    except ImportError:
        return None
    if not getattr(imagecodecs.PNG, "available", False):
        return None
    if array.ndim == 3:  # OpenCV's order is BGR(A); PNG stores RGB(A)
        array = array[..., [2, 1, 0, 3][: array.shape[2]]]
    return bytes(imagecodecs.png_encode(np.ascontiguousarray(array), level=PNG_LEVEL, filter=PNG_FILTER_NONE,
                                          strategy=Z_RLE))


def write_png(path: str | Path, array: np.ndarray) -> None:
    write_bytes(path, encode(array, ".png"))


def write_jpeg(path: str | Path, array: np.ndarray, quality: int = 90) -> None:
    write_bytes(path, encode(array, ".jpg", quality))
