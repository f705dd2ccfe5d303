"""Write masks and pictures atomically (encode in memory, then one rename), and choose which to write.

PNG is lossless, so any encoder that decodes back to the same array is as good as another; the
fastest wins. imagecodecs' libpng binding with no row filter and deflate level 1 encodes a full-size
DMID mask (2864x4432, uint8) ~5x faster than OpenCV's PNG writer (adaptive row filters, which cost
most of its time on masks), into a ~4x smaller file (benchmarks/encode_bench.py). OpenCV stays the
fallback for what imagecodecs cannot take, and writes every JPEG: JPEG is lossy, so changing its
encoder would change the overlays people already compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bcdeploy.errors import InputError
from bcdeploy.fileio import write_bytes

if TYPE_CHECKING:
    from bcdeploy.runtime.results.dicom.codes import Algorithm
    from bcdeploy.runtime.images.imageio import DecodedImage


@dataclass(frozen=True)
class Rendering:
    """What every output of one image is made from (the writer fills it once per image)."""

    mask: np.ndarray
    image: DecodedImage
    classes: list[str]
    palette: list[list[int]]
    lesions: list[dict[str, Any]]
    target: str | None  # the overlay's `| Target:` label
    source: bytes | None = None  # the DICOM bytes that were decoded (a SEG must reference exactly them)
    origin: str = "<bytes>"
    algorithm: Algorithm | None = None
    max_pixels: int = 0
    case_score: float | None = None
    uids: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # DICOM kind -> (series, SOP instance)

    @cached_property
    def dataset(self) -> Any:
        """The source dataset as derived objects copy it (dicom_source.checked_source), parsed once."""
        from bcdeploy.runtime.images.dicom import read_dataset
        from bcdeploy.runtime.results.dicom.source import checked_source, log_repairs

        if self.source is None or self.algorithm is None:
            raise InputError(f"{self.origin}: a DICOM output needs the DICOM source and the model's algorithm")
        dataset, repairs = checked_source(read_dataset(self.source, self.origin, max_pixels=self.max_pixels),
                                          self.origin)
        log_repairs(repairs, self.origin)
        return dataset


def _render_mask(r: Rendering) -> bytes:
    return encode(r.mask, ".png")


def _render_biner(r: Rendering) -> bytes:
    from bcdeploy.runtime.results.drawing import biner

    return encode(biner(r.mask, len(r.classes)), ".png")


def _render_overlay(r: Rendering) -> bytes:
    from bcdeploy.runtime.results.drawing import overlay

    return encode(overlay(r.image.picture_pixels, r.mask, r.palette, r.classes, r.lesions, r.target), ".jpg")


def _render_seg(r: Rendering) -> bytes:
    from bcdeploy.runtime.results.dicom.seg import seg_bytes

    return seg_bytes(r.dataset, r.mask, r.classes, algorithm=r.algorithm, uids=r.uids.get("seg"))


def _render_sr(r: Rendering) -> bytes:
    from bcdeploy.runtime.results.dicom.seg import segment_numbers
    from bcdeploy.runtime.results.dicom.sr import sr_bytes

    seg = (*r.uids["seg"], segment_numbers(r.mask, r.classes)) if "seg" in r.uids else None
    return sr_bytes(r.dataset, r.lesions, case_score=r.case_score, algorithm=r.algorithm, uids=r.uids["sr"], seg=seg)


def _render_sc(r: Rendering) -> bytes:
    from bcdeploy.runtime.results.dicom.sc import sc_bytes
    from bcdeploy.runtime.results.drawing import overlay

    picture = overlay(r.image.picture_pixels, r.mask, r.palette, r.classes, r.lesions, r.target)
    return sc_bytes(r.dataset, picture, algorithm=r.algorithm, uids=r.uids["sc"])


@dataclass(frozen=True)
class OutputKind:
    """One kind of per-image output: how `--save` names it, its key in the ledger's `outputs` record,
    and where it goes (`<folder>/<name><suffix>`, mirroring the inputs). The run's writer, the ledger,
    the reports and `--save` all read this one table."""

    save_name: str
    key: str
    folder: str
    suffix: str
    render: Callable[[Rendering], bytes]
    dicom_only: bool = False  # built from the source dataset: only DICOM inputs get one
    description: str = ""
    draws_image: bool = False  # drawn over the source's pixels (the other kinds need only the mask)

    def relative(self, name: str) -> str:
        return f"{self.folder}/{name}{self.suffix}"


OUTPUT_KINDS: tuple[OutputKind, ...] = (
    OutputKind("masks", "mask", "masks", ".png", _render_mask, description="class-index PNG at the source's size"),
    OutputKind("biner", "biner", "biner", ".png", _render_biner, description="lesion/no-lesion PNG (0/255)"),
    OutputKind("vis", "vis", "vis", ".jpg", _render_overlay, description="overlay with outlines and labels",
               draws_image=True),
    OutputKind("seg", "seg", "seg", ".dcm", _render_seg, dicom_only=True, description="DICOM Segmentation"),
    OutputKind("sr", "sr", "sr", ".dcm", _render_sr, dicom_only=True, description="DICOM SR, TID 1500 findings"),
    OutputKind("sc", "sc", "sc", ".dcm", _render_sc, dicom_only=True, description="DICOM Secondary Capture overlay",
               draws_image=True),
)
KINDS_BY_KEY = {kind.key: kind for kind in OUTPUT_KINDS}
# Outputs made per study, not per image, once the run is done with the study's images
# (runtime/run/studies.py): `--save cad`, the Mammography CAD SR, in `cad/<study>.dcm`.
STUDY_KINDS = {"cad": "DICOM Mammography CAD SR, one per study"}
SAVE_CHOICES = {**{kind.save_name: kind.key for kind in OUTPUT_KINDS}, **{key: key for key in STUDY_KINDS}}


def dicom_kinds(kinds: frozenset[str]) -> frozenset[str]:
    """The DICOM objects among these output kinds (SEG, SR, SC, CAD SR): written for DICOM inputs only,
    each in a series of its own, and what a PACS is sent."""
    return frozenset(key for key in kinds if key in STUDY_KINDS or KINDS_BY_KEY[key].dicom_only)


def draws_image(kinds: frozenset[str]) -> bool:
    """Whether any of these output kinds (OUTPUT_KINDS keys) is drawn over the source's pixels: only
    then does a run keep each image's picture (drawing.picture_of) past the model (memory: a few
    images in flight, each a 14-Mpx mammogram)."""
    return any(key in KINDS_BY_KEY and KINDS_BY_KEY[key].draws_image for key in kinds)


# What a run writes when `--save` is not given: the pictures (a SEG is asked for, as `seg` or --dicom-seg).
DEFAULT_OUTPUTS = frozenset({"mask", "biner", "vis"})
# deflate level 1, no row filter, run-length matching: masks are long runs of one value. The row
# filters cost ~4x the time and give nothing on masks; Z_RLE makes the file ~4x smaller at the same
# speed (benchmarks/encode_bench.py).
PNG_LEVEL = 1
PNG_FILTER_NONE = 0x08  # libpng's PNG_FILTER_NONE bit: filter type 0 on every row
Z_RLE = 3  # zlib strategy


def parse_save(value: str | Iterable[str] | None, *, dicom_seg: bool = False) -> frozenset[str]:
    """`--save masks,vis,seg` -> the OUTPUT_KINDS keys to write ({'mask', 'vis', 'seg'}).

    None or "all" means the default pictures; `dicom_seg` (the --dicom-seg flag) adds `seg`. Names may
    repeat or come as a list; an unknown or empty selection is an error, not a run that writes nothing.
    """
    chosen = _parse_names(value)
    return chosen | {"seg"} if dicom_seg else chosen


def _parse_names(value: str | Iterable[str] | None) -> frozenset[str]:
    if value is None:
        return DEFAULT_OUTPUTS
    items = value.split(",") if isinstance(value, str) else [part for v in value for part in str(v).split(",")]
    names = {item.strip().lower() for item in items if item.strip()}
    if names == {"all"}:
        return DEFAULT_OUTPUTS
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

