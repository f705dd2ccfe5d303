"""Read mammograms (TIFF, PNG, JPEG, DICOM) into the 8-bit BGR array MMSeg trained on.

Why this mapping: MMSeg's `LoadImageFromFile` decodes with `cv2.imdecode(..., IMREAD_COLOR)`, which
gives 8-bit BGR and drops alpha. DMID is 8-bit RGBA TIFF with R=G=B, so for 8-bit files we reproduce
exactly that (same decoder, same flags), and masks equal MMSeg's. Real scanners give more:

* 16-bit TIFF/PNG carry no window, and OpenCV's IMREAD_COLOR would keep only the top byte (a 12-bit
  image then spans 0..15 and looks black). We scale by the image's effective bit depth instead: the
  smallest of 10/12/14/16 bits that holds its maximum maps linearly onto 0..255.
* DICOM: modality LUT (rescale slope/intercept), then the VOI LUT or window centre/width the scanner
  recorded (the view the radiologist sees), MONOCHROME1 inverted so that dense tissue is bright as in
  DMID, then the windowed range stretched to 0..255. Without a window the full data range is used.

Formats are recognised by their magic bytes, not by suffix, so a DICOM without `.dcm` still reads.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy.errors import InputError

MIN_SIDE = 32
MAX_SIDE = 65_536
MAX_PIXELS = 1 << 30  # OpenCV's own decode limit

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dcm", ".dicom")


@dataclass(frozen=True)
class DecodedImage:
    """An image ready for preprocessing, plus how it was obtained (for reports)."""

    bgr: np.ndarray  # (H, W, 3) uint8
    format: str  # tiff | png | jpeg | dicom
    source_dtype: str
    source_channels: int
    intensity_map: str  # how the source range became 0..255
    tags: dict[str, Any] | None = None  # DICOM attributes (laterality, view, UIDs, spacing): runtime.dicom

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.bgr.shape[0]), int(self.bgr.shape[1])


def sniff_format(head: bytes) -> str | None:
    """Tell the format from the first 132 bytes of a file."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    return None


def read_image(path: str | Path) -> DecodedImage:
    """Decode `path` to 8-bit BGR, or raise InputError naming the file and the problem."""
    path = Path(path)
    return decode_image(_read_bytes(path), path)


def decode_image(data: bytes, origin: str | Path = "<bytes>") -> DecodedImage:
    """Decode file contents (e.g. an HTTP upload); `origin` names the source in errors."""
    origin = Path(origin)
    if not data:
        raise InputError(f"{origin}: file is empty (0 bytes)")
    fmt = sniff_format(data[:132])
    if fmt is None:
        raise InputError(f"{origin}: not a TIFF, PNG, JPEG or DICOM file (unrecognised header)")
    decoded = _decode_dicom(origin, data) if fmt == "dicom" else _decode_raster(origin, data, fmt)
    _check_dimensions(origin, decoded.bgr.shape[:2])
    return decoded


def read_mask(path: str | Path) -> np.ndarray:
    """Read a lesion mask as (H, W) uint8; any non-zero channel marks lesion.

    DMID masks are 0/255 RGBA TIFF (LZW); the seed's are 0/255 or index PNGs. Values are kept, the
    caller decides how to binarise.
    """
    path = Path(path)
    data = _read_bytes(path)
    fmt = sniff_format(data[:132])
    if fmt not in ("png", "tiff"):
        raise InputError(f"{path}: a mask must be a PNG or TIFF file")
    arr = _imdecode(path, data, fmt)
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
    if arr.dtype != np.uint8:
        arr = (arr > 0).astype(np.uint8) * 255
    _check_dimensions(path, arr.shape[:2])
    return np.ascontiguousarray(arr)


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected an image file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    if not data:
        raise InputError(f"{path}: file is empty (0 bytes)")
    return data


def _imdecode(path: Path, data: bytes, fmt: str) -> np.ndarray:
    """Decode with OpenCV as MMSeg does; TIFFs OpenCV cannot read get a second try with tifffile."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None and fmt == "tiff":
        arr = _decode_tiff_fallback(data)
    if arr is None:
        raise InputError(f"{path}: cannot decode {fmt.upper()} data (truncated or corrupt file?)")
    return arr


def _decode_tiff_fallback(data: bytes) -> np.ndarray | None:
    import logging

    import tifffile

    logging.getLogger("tifffile").setLevel(logging.ERROR)  # its warnings duplicate our one-line error
    try:
        arr = tifffile.imread(io.BytesIO(data), key=0)
    except Exception:  # noqa: BLE001 - any tifffile failure means "cannot decode", reported by caller
        return None
    if arr.ndim not in (2, 3) or arr.size == 0:
        return None
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[..., [2, 1, 0] + ([3] if arr.shape[2] == 4 else [])]  # tifffile gives RGB(A)
    return arr


def _decode_raster(path: Path, data: bytes, fmt: str) -> DecodedImage:
    import cv2

    if fmt == "jpeg":
        # JPEG is always 8-bit; IMREAD_COLOR is MMSeg's exact call (it also applies EXIF orientation).
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"{path}: cannot decode JPEG data (truncated or corrupt file?)")
        return DecodedImage(bgr, fmt, "uint8", 3, "identity")
    arr = _imdecode(path, data, fmt)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels not in (1, 3, 4):
        raise InputError(f"{path}: has {channels} channels; expected gray, RGB or RGBA")
    source_dtype = str(arr.dtype)
    arr, mapping = _to_uint8(path, arr)
    if channels == 1:
        bgr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    elif channels == 4:
        bgr = np.ascontiguousarray(arr[..., :3])  # alpha carries nothing in DMID; MMSeg drops it too
    else:
        bgr = arr
    return DecodedImage(bgr, fmt, source_dtype, channels, mapping)


def _to_uint8(path: Path, arr: np.ndarray) -> tuple[np.ndarray, str]:
    if arr.dtype == np.uint8:
        return arr, "identity"
    if arr.dtype == np.uint16:
        bits = effective_bit_depth(int(arr.max()))
        return scale_to_uint8(arr, 0.0, float((1 << bits) - 1)), f"linear 0..{(1 << bits) - 1} ({bits}-bit) -> 0..255"
    raise InputError(f"{path}: pixel type {arr.dtype} is not supported (expected 8- or 16-bit)")


def effective_bit_depth(max_value: int) -> int:
    """Smallest of 8/10/12/14/16 bits that can hold `max_value`."""
    for bits in (8, 10, 12, 14, 16):
        if max_value < (1 << bits):
            return bits
    return 16


def scale_to_uint8(arr: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly onto 0..255 with rounding, clipping outside values."""
    span = max(high - low, 1e-6)
    out = (arr.astype(np.float32) - np.float32(low)) * np.float32(255.0 / span)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _decode_dicom(path: Path, data: bytes, max_pixels: int = MAX_PIXELS, frame: int | None = None) -> DecodedImage:
    """Header checks, decoder choice and windowing live in bcdeploy.runtime.dicom."""
    import cv2

    from bcdeploy.runtime.dicom import decode_dicom

    pixels = decode_dicom(data, path, max_pixels=max_pixels, frame=frame)
    return DecodedImage(cv2.cvtColor(pixels.gray, cv2.COLOR_GRAY2BGR), "dicom", str(pixels.raw.dtype), 1,
                        pixels.intensity_map, pixels.tags)


def _check_dimensions(path: Path, hw: tuple[int, ...]) -> None:
    h, w = int(hw[0]), int(hw[1])
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE or h * w > MAX_PIXELS:
        raise InputError(
            f"{path}: implausible image size {w}x{h} (each side must be {MIN_SIDE}..{MAX_SIDE} px)"
        )
