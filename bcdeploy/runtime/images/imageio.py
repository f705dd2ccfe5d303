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
A file can lie, so the size its header declares is checked against `max_pixels` before any decoder
allocates (image_headers.py), and the decoded array must have exactly that size.
8-bit TIFF may be decoded by tifffile + imagecodecs on several threads instead of OpenCV, only for
layouts tested to give OpenCV's exact pixels (see `_tifffile_fast`).
"""

from __future__ import annotations

import functools
import io
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy.errors import InputError
from bcdeploy.fileio import read_input
from bcdeploy.runtime.images.decoder_guard import decoding
from bcdeploy.runtime.images.headers import (
    DEFAULT_MAX_PIXELS,
    check_decoded_size,
    check_pixel_budget,
    jpeg_size,
    png_size,
)
from bcdeploy.runtime.images.intensity import effective_bit_depth, scale_to_uint8

MIN_SIDE = 32
MAX_SIDE = 65_536
MAX_PIXELS = 1 << 30  # OpenCV's own decode limit

TIFF_BITS = (1, 8, 16)  # bits per sample a TIFF mammogram (or its mask) is stored with
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
    decoded_hw: tuple[int, int] | None = None  # (H, W) as decoded, once `bgr` holds fewer pixels (below)
    picture: np.ndarray | None = None  # the pixels pictures are drawn on (drawing.picture_of), see below

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) as decoded: the size of the mask and of every output, whatever `bgr` holds now."""
        if self.decoded_hw is not None:
            return self.decoded_hw
        return int(self.bgr.shape[0]), int(self.bgr.shape[1])

    @property
    def full_size(self) -> bool:
        """`bgr` holds every decoded pixel (not dropped, not resized for a model)."""
        return (int(self.bgr.shape[0]), int(self.bgr.shape[1])) == self.shape

    @property
    def picture_pixels(self) -> np.ndarray:
        """What an overlay is drawn on: the picture made for it, else the decoded pixels."""
        return self.bgr if self.picture is None else self.picture

    def with_picture(self, picture: np.ndarray) -> DecodedImage:
        """The same image carrying `picture`: its pixels as an overlay draws on them (downscaled to the
        overlay's size by drawing.picture_of). Made while the full-size pixels are at hand, so that
        `bgr` can then be reduced to the model's view or dropped, and an image waiting for the model or
        the writer holds ~9 MiB instead of a 40 MiB mammogram."""
        return replace(self, picture=picture)

    def without_pixels(self) -> DecodedImage:
        """The same image's description without the pixels a model reads: `shape` stays for the reports,
        `bgr` becomes an empty (0, 0, 3) array, so anything that would still read it fails loudly, and a
        record crossing processes (Ray) carries only its `picture`, if one was made for an overlay."""
        return replace(self, bgr=np.empty((0, 0, 3), np.uint8), decoded_hw=self.shape)

    def resized(self, bgr: np.ndarray) -> DecodedImage:
        """The same image with `bgr`, its pixels resized as a model reads them (Segmenter.model_view): a
        run holds that instead of the full size while the model queues; `shape` stays the decoded size,
        at which the mask is made (and `picture` what overlays are drawn on)."""
        return replace(self, bgr=bgr, decoded_hw=self.shape)


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


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode `path` to 8-bit BGR, or raise InputError naming the file and the problem.

    `max_pixels`: images whose header declares more pixels are refused before decoding.
    """
    path = Path(path)
    return decode_image(_read_bytes(path), path, max_pixels=max_pixels)


def decode_image(data: bytes, origin: str | Path = "<bytes>", *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 frame: int | None = None, modalities: frozenset[str] | None = None) -> DecodedImage:
    """Decode file contents (e.g. an HTTP upload); `origin` names the source in errors.

    `frame` picks one frame (0-based) of a multi-frame DICOM object; other formats have one frame.
    `modalities`: the DICOM modalities to accept (None: mammography's, runtime/images/dicom.py).
    """
    origin = Path(origin)
    if not data:
        raise InputError(f"{origin}: file is empty (0 bytes)")
    fmt = sniff_format(data[:132])
    if fmt is None:
        raise InputError(f"{origin}: not a TIFF, PNG, JPEG or DICOM file (unrecognised header)")
    with decoding(origin, f"{fmt.upper()} data"):  # any decoder's failure, a panic too, is this file's line
        if fmt == "dicom":
            decoded = _decode_dicom(origin, data, max_pixels, frame, modalities)
        else:
            decoded = _decode_raster(origin, data, fmt, max_pixels)
    _check_dimensions(origin, decoded.bgr.shape[:2])
    return decoded


def read_mask(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a lesion mask as (H, W) uint8; any non-zero channel marks lesion.

    DMID masks are 0/255 RGBA TIFF (LZW); the original project's are 0/255 or index PNGs. Values are kept, the
    caller decides how to binarise.
    """
    path = Path(path)
    data = _read_bytes(path)
    fmt = sniff_format(data[:132])
    if fmt not in ("png", "tiff"):
        raise InputError(f"{path}: a mask must be a PNG or TIFF file")
    with decoding(path, f"{fmt.upper()} mask"):
        arr = _decode_pixels(path, data, fmt, max_pixels).pixels
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
    if arr.dtype.kind == "u" and arr.dtype != np.uint8:
        # 16-bit (or wider) masks keep their scale, so the caller's threshold means the same as for 8 bits
        # (0/65535 -> 0/255); rounding up keeps a faint non-zero value non-zero, for the caller to report.
        top = int(np.iinfo(arr.dtype).max)
        arr = ((arr.astype(np.uint64) * 255 + top - 1) // top).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = (arr > 0).astype(np.uint8) * 255
    _check_dimensions(path, arr.shape[:2])
    return np.ascontiguousarray(arr)


def _read_bytes(path: Path) -> bytes:
    data, _ = read_input(path)
    if not data:
        raise InputError(f"{path}: file is empty (0 bytes)")
    return data


@dataclass(frozen=True)
class _Pixels:
    """Decoded samples: `rgb` tells tifffile's RGB(A) order from OpenCV's BGR(A); `channels` is the
    source's channel count where `pixels` are already BGR (OpenCV's IMREAD_COLOR)."""

    pixels: np.ndarray
    rgb: bool = False
    channels: int | None = None


def _decode_pixels(path: Path, data: bytes, fmt: str, max_pixels: int, *, color: bool = False) -> _Pixels:
    """Check the header's size against the budget, decode, and check the result has that size.

    `color`: BGR is all the caller needs from an 8-bit TIFF (not a mask, whose channels all count).
    """
    if fmt == "tiff":
        return _decode_tiff(path, data, max_pixels, color)
    width, height = png_size(path, data)
    check_pixel_budget(path, width, height, max_pixels)
    _check_dimensions(path, (height, width))
    arr = _cv2_decode(path, data, fmt)
    check_decoded_size(path, (width, height), (arr.shape[1], arr.shape[0]))
    return _Pixels(arr)


def _decode_tiff(path: Path, data: bytes, max_pixels: int, color: bool) -> _Pixels:
    """TIFF: size from tifffile's first page (OpenCV decodes the first page too), then decode."""
    logging.getLogger("tifffile").setLevel(logging.ERROR)  # its warnings duplicate our one-line error
    # Closed here, not by tifffile: its TiffFile, pages and tags reference each other, so they are freed
    # only by Python's cycle collector, and a buffer left open in them kept the whole file (17 MiB for a
    # DMID TIFF) alive until then: resident memory rose by that much per image between collections.
    with io.BytesIO(data) as buffer:
        return _decode_tiff_file(path, buffer, data, max_pixels, color)


def _decode_tiff_file(path: Path, buffer: io.BytesIO, data: bytes, max_pixels: int, color: bool) -> _Pixels:
    import tifffile

    try:
        tif = tifffile.TiffFile(buffer)
    except Exception as err:  # noqa: BLE001 - tifffile raises many types for a bad header
        raise InputError(f"{path}: cannot read the TIFF header ({type(err).__name__}: {err})") from None
    with tif:
        try:
            page = tif.pages[0]
            width, height = int(page.imagewidth), int(page.imagelength)
            images = _full_pages(tif)
            bits, samples = int(page.bitspersample), int(page.samplesperpixel)
        except Exception as err:  # noqa: BLE001 - as above
            raise InputError(f"{path}: cannot read the TIFF header ({type(err).__name__}: {err})") from None
        # the header's sample layout decides what a decoder allocates, as much as its size: a 214-byte
        # file claiming 26857 bits per sample made one ask for gigabytes (found by the reader fuzzer)
        if bits not in TIFF_BITS or not 1 <= samples <= 4:
            raise InputError(f"{path}: TIFF with {samples} channels of {bits} bits; a mammogram has 1 to 4 "
                             f"channels of {'/'.join(map(str, TIFF_BITS))} bits")
        if images > 1:  # reduced-resolution pages (thumbnails, bit 0 of NewSubfileType) do not count
            raise InputError(f"{path}: multi-page TIFF ({images} full-resolution pages); expected one mammogram "
                             "per file: split it (e.g. tiffsplit) and segment each page")
        check_pixel_budget(path, width, height, max_pixels)
        _check_dimensions(path, (height, width))
        decoded = _tifffile_fast(page, len(data)) or _tiff_via_opencv(path, data, page, color)
        transposed = _orientation(page) >= 5  # OpenCV applies the Orientation tag; 5..8 swap the sides
    check_decoded_size(path, (width, height), (decoded.pixels.shape[1], decoded.pixels.shape[0]),
                       may_rotate=transposed)
    return decoded


def _full_pages(tif: Any, most: int = 16) -> int:
    """Full-resolution pages (not reduced-resolution ones, bit 0 of NewSubfileType), counted up to two
    among the first `most` pages: a crafted IFD chain can be endless (found by the reader fuzzer)."""
    found = 0
    for index, page in enumerate(tif.pages):
        if index >= most or found > 1:
            break
        found += not int(getattr(page, "subfiletype", 0) or 0) & 1
    return found


# Layouts tifffile (with imagecodecs) decodes to exactly OpenCV's samples, tested for each: 8-bit
# gray/RGB/RGBA in strips, top-left orientation (OpenCV applies the Orientation tag, tifffile does
# not), contiguous, uncompressed/LZW/deflate, with or without the horizontal predictor.
# Why only with threads and big strips: per CPU second tifffile is no faster than OpenCV (LZW RGBA:
# ~160 vs ~140 ms CPU), and with one-row strips its per-strip Python overhead makes it slower; its
# gain is decoding strips on TIFF_DECODE_WORKERS threads (imagecodecs releases the GIL), which
# roughly halves the wall time of one image (benchmarks/decode_speed.py). A run loop that decodes
# beside inference may set TIFF_DECODE_WORKERS = 1 to leave the cores to the model: OpenCV decodes then.
_FAST_COMPRESSIONS = frozenset([1, 5, 8, 32946])  # none, LZW, deflate, Adobe's deflate code
_MIN_STRIP_BYTES = 64 * 1024  # decoded bytes per strip below which threads cost more than they give
TIFF_DECODE_WORKERS = max(1, min(2, (os.cpu_count() or 1) // 2))  # threads only where a core is spare


def _tifffile_fast(page: Any, file_size: int) -> _Pixels | None:
    """Decode with tifffile when the layout is one of the tested ones, else None (OpenCV decodes)."""
    samples = int(page.samplesperpixel)
    layout_ok = (
        page.bitspersample == 8 and page.sampleformat == 1 and page.compression in _FAST_COMPRESSIONS
        and page.predictor in (1, 2) and page.fillorder == 1 and _orientation(page) == 1 and not page.is_tiled
        and ((samples == 1 and page.photometric == 1)
             or (samples in (3, 4) and page.photometric == 2 and page.planarconfig == 1))
    )
    strips = len(page.dataoffsets)
    strip_bytes = min(page.rowsperstrip, page.imagelength) * page.imagewidth * samples
    worth_threads = TIFF_DECODE_WORKERS > 1 and strips > 1 and strip_bytes >= _MIN_STRIP_BYTES
    if not (layout_ok and worth_threads and _has_imagecodecs()):
        return None
    # tifffile fills missing or out-of-file strips with zeros where libtiff fails: leave those to OpenCV.
    if not all(offset > 0 and count > 0 and offset + count <= file_size
               for offset, count in zip(page.dataoffsets, page.databytecounts)):
        return None
    try:
        pixels = page.asarray(maxworkers=TIFF_DECODE_WORKERS)
    except Exception:  # noqa: BLE001 - corrupt data: OpenCV gives the verdict and the error line
        return None
    # OpenCV premultiplies colour by an unassociated alpha (ExtraSamples=2); equal only where opaque.
    if samples == 4 and tuple(page.extrasamples) == (2,) and not (pixels[..., 3] == 255).all():
        return None
    return _Pixels(pixels, rgb=True)


def _tiff_via_opencv(path: Path, data: bytes, page: Any, color: bool) -> _Pixels:
    """OpenCV; TIFFs it cannot read (e.g. 5 samples) get a second try with tifffile.

    8-bit gray/RGB/RGBA for an image: IMREAD_COLOR, MMSeg's exact call, which also costs ~40 % less
    CPU than IMREAD_UNCHANGED plus dropping alpha (benchmarks/decode_speed.py). Otherwise
    IMREAD_UNCHANGED, so 16-bit data keeps its range for `_to_uint8`.
    """
    import cv2

    samples = int(page.samplesperpixel)
    bgr_only = color and page.bitspersample == 8 and page.sampleformat == 1 and samples in (1, 3, 4)
    flags = cv2.IMREAD_COLOR if bgr_only else cv2.IMREAD_UNCHANGED
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if arr is not None:
        return _Pixels(arr, channels=samples if bgr_only else None)
    try:
        arr = page.asarray()
    except Exception:  # noqa: BLE001 - any tifffile failure means "cannot decode"
        arr = None
    if arr is None or arr.ndim not in (2, 3) or arr.size == 0:
        raise InputError(f"{path}: cannot decode TIFF data (truncated or corrupt file?)")
    return _Pixels(arr, rgb=True)


def _orientation(page: Any) -> int:
    """TIFF Orientation (1 = rows top to bottom); a value that is no single number in 1..8 (a crafted
    tag holding a tuple: the fuzzer's fourth finding) is read as 1, as OpenCV reads it."""
    value = page.tags.valueof(274, default=1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


@functools.cache
def _has_imagecodecs() -> bool:
    """tifffile decodes LZW only through imagecodecs; without it OpenCV decodes everything."""
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        return False
    return True


def _cv2_decode(path: Path, data: bytes, fmt: str) -> np.ndarray:
    """Decode with OpenCV as MMSeg does (IMREAD_UNCHANGED: bit depth and alpha kept for us to map)."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError(f"{path}: cannot decode {fmt.upper()} data (truncated or corrupt file?)")
    return arr


def _decode_raster(path: Path, data: bytes, fmt: str, max_pixels: int) -> DecodedImage:
    import cv2

    if fmt == "jpeg":
        width, height = jpeg_size(path, data)
        check_pixel_budget(path, width, height, max_pixels)
        _check_dimensions(path, (height, width))
        # JPEG is always 8-bit; IMREAD_COLOR is MMSeg's exact call (it also applies EXIF orientation).
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"{path}: cannot decode JPEG data (truncated or corrupt file?)")
        check_decoded_size(path, (width, height), (bgr.shape[1], bgr.shape[0]), may_rotate=True)
        return DecodedImage(bgr, fmt, "uint8", 3, "identity")
    decoded = _decode_pixels(path, data, fmt, max_pixels, color=True)
    arr = decoded.pixels
    channels = decoded.channels or (1 if arr.ndim == 2 else arr.shape[2])
    if channels not in (1, 3, 4):
        raise InputError(f"{path}: has {channels} channels; expected gray, RGB or RGBA")
    source_dtype = str(arr.dtype)
    arr, mapping = _to_uint8(path, arr)
    return DecodedImage(_to_bgr(arr, decoded.rgb), fmt, source_dtype, channels, mapping)


def _to_bgr(arr: np.ndarray, rgb: bool) -> np.ndarray:
    """Three contiguous BGR channels; alpha carries nothing in DMID and MMSeg drops it too."""
    import cv2

    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    if arr.shape[2] == 3 and not rgb:
        return np.ascontiguousarray(arr)
    if arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)


def _to_uint8(path: Path, arr: np.ndarray) -> tuple[np.ndarray, str]:
    if arr.dtype == np.uint8:
        return arr, "identity"
    if arr.dtype == np.uint16:
        bits = effective_bit_depth(int(arr.max()))
        return scale_to_uint8(arr, 0.0, float((1 << bits) - 1)), f"linear 0..{(1 << bits) - 1} ({bits}-bit) -> 0..255"
    raise InputError(f"{path}: pixel type {arr.dtype} is not supported (expected 8- or 16-bit)")


def _decode_dicom(path: Path, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, frame: int | None = None,
                  modalities: frozenset[str] | None = None) -> DecodedImage:
    """Header checks, decoder choice and windowing live in bcdeploy.runtime.images.dicom."""
    import cv2

    from bcdeploy.runtime.images.dicom import MAMMOGRAPHY_MODALITIES, decode_dicom

    pixels = decode_dicom(data, path, max_pixels=max_pixels, frame=frame,
                          modalities=MAMMOGRAPHY_MODALITIES if modalities is None else modalities)
    return DecodedImage(cv2.cvtColor(pixels.gray, cv2.COLOR_GRAY2BGR), "dicom", str(pixels.raw.dtype), 1,
                        pixels.intensity_map, pixels.tags)


def _check_dimensions(path: Path, hw: tuple[int, ...]) -> None:
    h, w = int(hw[0]), int(hw[1])
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE or h * w > MAX_PIXELS:
        raise InputError(
            f"{path}: implausible image size {w}x{h} (each side must be {MIN_SIDE}..{MAX_SIDE} px)"
        )
