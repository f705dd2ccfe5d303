"""Read a mammogram from DICOM as a PACS sends it: any transfer syntax, checked before it is decoded.

Order matters, because a file can lie and a decode can be expensive:
1. parse the dataset (pixel data stays encoded), refuse what the model must not see: more pixels
   than the budget (Rows x Columns, per frame), colour, a multi-frame object (tomosynthesis) without
   a chosen frame, a 'FOR PROCESSING' (raw detector) image;
2. check a decoder for the transfer syntax is installed, or name the syntax and the extra to install;
3. decode ONE frame, apply the modality LUT and the scanner's VOI LUT/window, invert MONOCHROME1.

Why 'FOR PROCESSING' is refused and not windowed: those images are raw detector signal (log-linear,
no vendor processing: no skin-line equalisation, no contrast enhancement). No window turns them into
what a FOR PRESENTATION image looks like, and the model was trained on presentation images only, so
any mask would be unvalidated. The PACS holds the FOR PRESENTATION series of the same study.

Decoders (the `dicom` extra), picked for permissive licences and coverage: GDCM (BSD) decodes the
JPEG family (baseline, extended, lossless .57/.70) and everything else as fallback; CharLS via
pyjpegls (BSD/MIT) JPEG-LS; OpenJPEG via pylibjpeg-openjpeg (BSD/MIT) JPEG 2000; pylibjpeg-rle RLE.
pylibjpeg-libjpeg would cover the JPEG family too but is GPLv3, which a hospital's integrator
shipping our wheel into an image must then honour; GDCM does the same job under BSD, at the same
speed, except 12-bit JPEG Extended (lossy, not used for mammograms one reads from): that one asks for
pylibjpeg-libjpeg by name.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy.errors import InputError
from bcdeploy.runtime.images.decoder_guard import decoding, failures_become, one_line
from bcdeploy.runtime.images.intensity import scale_to_uint8
from bcdeploy.runtime.notices import say_once

INSTALL_HINT = "pip install 'bcdeploy[dicom]'"
# What a mammogram's Modality says: MG, or DX/CR from a general radiography system (older archives).
# Anything else (CT, MR, US, a secondary capture OT) is no mammogram: refused unless asked for.
MAMMOGRAPHY_MODALITIES = frozenset({"MG", "DX", "CR"})
# Detector pixel pitches of radiography and mammography lie in 0.025..1 mm; outside this range a
# spacing is a broken header (0, NaN, 1e300), never a real one: sizes then stay in pixels.
SPACING_RANGE_MM = (0.001, 5.0)
MAX_MAGNIFICATION = 5.0  # Estimated Radiographic Magnification Factor: magnification views reach ~2
log = logging.getLogger(__name__)
_PREFERRED_PLUGIN = {"1.2.840.10008.1.2.4.80": "pyjpegls", "1.2.840.10008.1.2.4.81": "pyjpegls"}
DEFLATED = "1.2.840.10008.1.2.1.99"
LUT_MAX_ENTRIES = 1 << 20  # integer ranges up to this go through a lookup table (window_to_uint8)
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"  # GDCM (through pydicom) decodes it at 8 bits only



@dataclass(frozen=True)
class DicomPixels:
    """One decoded frame: the 8-bit gray view the model sees, the raw values and how one became the other."""

    gray: np.ndarray  # (H, W) uint8, windowed, MONOCHROME1 already inverted
    raw: np.ndarray  # (H, W) stored values as decoded (before any LUT)
    intensity_map: str
    tags: dict[str, Any]


def read_dataset(data: bytes, origin: str | Path = "<bytes>", *, max_pixels: int | None = None) -> Any:
    """Parse a DICOM file; pixel data stays encoded (pydicom decodes only on `pixel_array`).

    A deflated file is inflated here, at most to `max_pixels` 16-bit pixels twice over (plus 1 MiB of
    attributes): pydicom would inflate all of it before any header could be checked, so a few MB
    could claim gigabytes.
    """
    import pydicom

    # pydicom raises many types for a bad file; only interrupts are no verdict on it
    with failures_become(lambda err: InputError(f"{origin}: not a readable DICOM file ({one_line(err)})")):
        fp = io.BytesIO(data)
        pydicom.filereader.read_preamble(fp, False)
        meta = pydicom.filereader._read_file_meta_info(fp)
        if meta.get("TransferSyntaxUID") != DEFLATED or max_pixels is None:
            return pydicom.dcmread(io.BytesIO(data))
        body = _inflate(data[fp.tell():], origin, limit=4 * max_pixels + (1 << 20))
        dataset = pydicom.filereader.read_dataset(io.BytesIO(body), is_implicit_VR=False, is_little_endian=True)
        return pydicom.dataset.FileDataset(str(origin), dataset, preamble=data[:128], file_meta=meta,
                                           is_implicit_VR=False, is_little_endian=True)


HEADER_BYTES = 1 << 20  # a header-only read looks at no more than this (the attributes before the pixels)


def header_of(source: bytes | str | Path) -> Any | None:
    """The attributes before the pixel data of a DICOM file (bytes or a path), or None when they cannot
    be read: what is known of an image that failed (its study's CAD SR lists it). At most HEADER_BYTES
    are read, and no value over 1 KiB is loaded: a hostile header must not cost more than a good one."""
    import pydicom

    try:
        if isinstance(source, bytes):
            head = source[:HEADER_BYTES]
        else:
            with open(source, "rb") as handle:
                head = handle.read(HEADER_BYTES)
        return pydicom.dcmread(io.BytesIO(head), stop_before_pixels=True, defer_size=1024)
    except Exception:  # noqa: BLE001 - unreadable is an answer here, not an error
        return None


def _inflate(deflated: bytes, origin: str | Path, *, limit: int) -> bytes:
    import zlib

    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    body = inflater.decompress(deflated, limit)
    if inflater.unconsumed_tail:
        raise InputError(f"{origin}: deflated DICOM inflates to more than {limit:,} bytes, more than the pixel budget "
                         "allows; raise it with --max-pixels if this file is genuine")
    return body


def decode_dicom(data: bytes, origin: str | Path = "<bytes>", *, max_pixels: int,
                 frame: int | None = None, modalities: frozenset[str] = MAMMOGRAPHY_MODALITIES) -> DicomPixels:
    """Check the header, then decode one frame of a DICOM mammogram to 8-bit gray.

    `frame` picks one frame (0-based) of a multi-frame object; None refuses multi-frame objects.
    Raises InputError with one line naming the file for every refusal.
    """
    ds = read_dataset(data, origin, max_pixels=max_pixels)
    index = check_header(ds, origin, max_pixels=max_pixels, frame=frame, modalities=modalities)
    raw = _decode_frame(ds, origin, index)
    gray, mapping = window_to_uint8(ds, raw, origin=origin)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        gray = 255 - gray
        mapping += ", MONOCHROME1 inverted"
    return DicomPixels(gray, raw, mapping, dicom_tags(ds, frame=index if _frame_count(ds) > 1 else None))


def describe_dicom(data: bytes, origin: str | Path = "<bytes>", *, max_pixels: int,
                   frame: int | None = None, modalities: frozenset[str] = MAMMOGRAPHY_MODALITIES) -> dict[str, Any]:
    """What a file is and whether bcdeploy would read it, from the header alone (no pixel decode).

    Raises InputError (one line) for a file that would be refused; `bcdeploy dicom info` prints it.
    """
    ds = read_dataset(data, origin, max_pixels=max_pixels)
    index = check_header(ds, origin, max_pixels=max_pixels, frame=frame, modalities=modalities)
    _require_decoder(ds, origin)
    syntax = ds.file_meta.TransferSyntaxUID
    return {"rows": int(ds.Rows), "columns": int(ds.Columns), "frames": _frame_count(ds),
            "bits_stored": int(ds.get("BitsStored", 0) or 0), "transfer_syntax_name": syntax.name,
            **dicom_tags(ds, frame=index)}


def check_header(ds: Any, origin: str | Path, *, max_pixels: int, frame: int | None = None,
                 modalities: frozenset[str] = MAMMOGRAPHY_MODALITIES) -> int | None:
    """Refuse, from the header alone, what must not be decoded; returns the frame index to decode."""
    if "PixelData" not in ds:
        raise InputError(f"{origin}: DICOM without pixel data (SOP class {_sop_class_name(ds)}); expected an image")
    modality = str(ds.get("Modality") or "").strip().upper()
    if modality and modality not in modalities:
        raise InputError(f"{origin}: modality {modality} ({_sop_class_name(ds)}) is not a mammogram; the model reads "
                         f"{', '.join(sorted(modalities))} images (--modalities {','.join(sorted(modalities))},"
                         f"{modality} to segment it anyway)")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * cols > max_pixels:
        raise InputError(f"{origin}: image of {cols}x{rows} = {rows * cols:,} pixels exceeds the budget of "
                         f"{max_pixels:,} pixels; raise it with --max-pixels if this file is genuine")
    check_pixel_length(ds, origin)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        raise InputError(f"{origin}: DICOM with {samples} samples per pixel "
                         f"({ds.get('PhotometricInterpretation', '?')}); expected a grayscale mammogram")
    intent = str(ds.get("PresentationIntentType", "")).upper()
    if intent == "FOR PROCESSING":
        raise InputError(f"{origin}: a 'FOR PROCESSING' (raw detector) image; the model reads 'FOR PRESENTATION' "
                         "images only: send the FOR PRESENTATION series of this study")
    return _frame_index(ds, origin, frame)


def check_pixel_length(ds: Any, origin: str | Path) -> None:
    """Refuse native (uncompressed) pixel data shorter than Rows x Columns x frames x samples x bits say: a
    truncated file or transfer. Encapsulated data is checked by its decoder (fragments carry their lengths)."""
    if "PixelData" not in ds:
        return
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_encapsulated:
        return
    try:
        bits = int(ds.get("BitsAllocated", 16) or 16)
        expected = (int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * _frame_count(ds)
                    * int(ds.get("SamplesPerPixel", 1) or 1) * bits + 7) // 8
        have = len(ds.PixelData)
    except (TypeError, ValueError) as err:
        raise InputError(f"{origin}: unreadable pixel data attributes ({err})") from None
    if have < expected:
        raise InputError(f"{origin}: pixel data holds {have:,} bytes, its header describes {expected:,}: the file is "
                         "truncated")


def _frame_index(ds: Any, origin: str | Path, frame: int | None) -> int | None:
    frames = _frame_count(ds)
    if frame is None:
        if frames > 1:
            raise InputError(f"{origin}: multi-frame DICOM ({frames} frames, e.g. tomosynthesis); "
                             f"choose one frame (0..{frames - 1}) to segment it")
        return None
    if not 0 <= frame < frames:
        raise InputError(f"{origin}: frame {frame} asked for, the file has {frames} frame(s) (0..{frames - 1})")
    return frame


def _frame_count(ds: Any) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _decode_frame(ds: Any, origin: str | Path, index: int | None) -> np.ndarray:
    plugin = _require_decoder(ds, origin)
    syntax = ds.file_meta.TransferSyntaxUID
    with decoding(origin, f"DICOM pixel data ({syntax.name}, {syntax})"):  # a Rust decoder's panic too
        ds.pixel_array_options(index=index, decoding_plugin=plugin)
        pixels = ds.pixel_array
    if pixels.ndim != 2:
        raise InputError(f"{origin}: DICOM with pixel shape {pixels.shape}; expected one 2-D grayscale frame")
    return pixels


def _require_decoder(ds: Any, origin: str | Path) -> str:
    """A missing decoder is a missing install, not a bad file: say which syntax and what to install.

    Returns the plugin to use ("" = pydicom's order): CharLS decodes JPEG-LS ~1.6x faster than GDCM.
    """
    from pydicom.pixels import get_decoder

    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None:
        raise InputError(f"{origin}: DICOM without a transfer syntax in its file meta information")
    if not syntax.is_compressed:
        return ""
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise InputError(f"{origin}: transfer syntax {syntax.name} ({syntax}) has no decoder in pydicom; "
                         "ask the PACS to send JPEG Lossless, JPEG-LS, JPEG 2000 or uncompressed") from None
    if not decoder.is_available:
        raise InputError(f"{origin}: no decoder installed for transfer syntax {syntax.name} ({syntax}); "
                         f"install one with: {INSTALL_HINT}")
    usable = _usable_plugins(decoder)
    if syntax == JPEG_EXTENDED and int(ds.get("BitsStored", 8)) > 8 and "pylibjpeg" not in usable:
        raise InputError(f"{origin}: 12-bit {syntax.name} ({syntax}) needs pylibjpeg-libjpeg (GPLv3, left out "
                         "of the dicom extra): pip install pylibjpeg-libjpeg, or ask the PACS for a lossless syntax")
    preferred = _PREFERRED_PLUGIN.get(str(syntax), "")
    return preferred if preferred in usable else ""


def _usable_plugins(decoder: Any) -> set[str]:
    """Plugins whose dependencies are installed (pylibjpeg counts only with its libjpeg backend)."""
    import importlib.util

    names = set(decoder.available_plugins)
    if "pylibjpeg" in names and importlib.util.find_spec("libjpeg") is None:
        names.discard("pylibjpeg")
    return names


def window_to_uint8(ds: Any, pixels: np.ndarray, *, origin: str | Path = "<bytes>") -> tuple[np.ndarray, str]:
    """Modality LUT, then the scanner's VOI LUT or window (the radiologist's view), stretched to 0..255.

    Integer pixels go through a lookup table: the same pydicom functions applied to every stored value
    between the image's min and max, then indexed. Each value gets exactly the arithmetic it would get
    in the full-image path (identical output), but a 13.6 MP mammogram costs 4096 evaluations instead of
    13.6 M float64 ones (0.48 s -> 0.11 s on the 2-core CI machine, benchmarks/dicom_speed.py).
    """
    ds, dropped = _usable_lut_attributes(ds, origin)
    has_voi = "VOILUTSequence" in ds or "WindowCenter" in ds
    how = ("VOI LUT/window" if has_voi else "modality LUT, no window") + dropped
    lo, hi = (int(pixels.min()), int(pixels.max())) if pixels.size else (0, 0)
    if pixels.dtype.kind not in "ui" or hi - lo > LUT_MAX_ENTRIES:
        values = _voi(ds, pixels, has_voi)
        low, high = _finite_range(ds, origin, float(values.min()), float(values.max()))
        return _scale(values, low, high), f"{how}, {low:g}..{high:g} -> 0..255"
    index = np.subtract(pixels, lo, dtype=np.int32) if lo else pixels
    table = _voi(ds, np.arange(lo, hi + 1).astype(pixels.dtype), has_voi)
    present = table[np.bincount(index.ravel(), minlength=table.size) > 0]
    low, high = _finite_range(ds, origin, float(present.min()), float(present.max()))
    return _scale(table, low, high)[index], f"{how}, {low:g}..{high:g} -> 0..255"


def _usable_lut_attributes(ds: Any, origin: str | Path) -> tuple[Any, str]:
    """The dataset as the LUT functions may read it: a Rescale Slope or Intercept that is not a finite
    number makes every pixel value unknown (refused, one line); a window that is not finite numbers with
    a width of at least 1 is no window (dropped, as for a file without one, and said in the intensity map)."""
    numbers = {}
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        if keyword in ds:
            numbers[keyword] = _numbers(ds[keyword].value)
            if numbers[keyword] is None or len(numbers[keyword]) != 1:
                raise InputError(f"{origin}: {keyword} {str(ds[keyword].value)[:40]!r} is not one finite number: "
                                 "the stored values cannot be mapped to intensities")
    note = ""
    if "WindowCenter" in ds or "WindowWidth" in ds:
        centers, widths = _numbers(ds.get("WindowCenter")), _numbers(ds.get("WindowWidth"))
        if centers and widths and all(w >= 1 for w in widths):  # PS3.3 C.11.2.1.2: Window Width >= 1
            numbers.update(WindowCenter=centers, WindowWidth=widths)
        else:
            note = f" (window {ds.get('WindowCenter')!s:.20}/{ds.get('WindowWidth')!s:.20} unusable: ignored)"
            numbers.update(WindowCenter=None, WindowWidth=None)
    if not numbers:
        return ds, ""
    from pydicom.tag import Tag

    # a copy holding the values as the numbers just read, with their proper VR: a file may store them
    # as text under another VR, which pydicom's LUT arithmetic cannot take
    usable = ds.copy()
    for keyword, values in numbers.items():
        tag = Tag(keyword)
        if tag in usable:
            del usable[tag]
        if values is not None:
            usable.add_new(tag, "DS", values if len(values) > 1 else values[0])
    return usable, note


def _numbers(value: Any) -> list[float] | None:
    """A DS value (one or several) as finite floats; None when absent, text, NaN or inf."""
    if value is None or value == "":
        return None
    values = value if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else [value]
    numbers = []
    for item in values:
        try:
            number = float(item)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number):
            return None
        numbers.append(number)
    return numbers


def _finite_range(ds: Any, origin: str | Path, low: float, high: float) -> tuple[float, float]:
    """A Rescale Slope of NaN (or values that overflow to inf) leaves every pixel undefined: casting
    them to uint8 gives an arbitrary image that would be segmented and reported as if it were real."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InputError(f"{origin}: the modality/VOI LUT (Rescale Slope {ds.get('RescaleSlope')}, Intercept "
                         f"{ds.get('RescaleIntercept')}) gives non-finite pixel values ({low:g}..{high:g}); not used")
    return low, high


def _voi(ds: Any, values: np.ndarray, has_voi: bool) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(values, ds)
    return apply_voi_lut(values, ds, index=0) if has_voi else values


def _scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return scale_to_uint8(values, low, high)


def dicom_tags(ds: Any, frame: int | None = None) -> dict[str, Any]:
    """The attributes a lesion report needs, JSON-ready (None where the file has none)."""
    spacing, source = pixel_spacing_mm(ds)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    return {
        "laterality": _text(ds, "ImageLaterality") or _text(ds, "Laterality"),
        "view_position": _text(ds, "ViewPosition"),
        "view_code": _view_code(ds),
        "patient_orientation": _text(ds, "PatientOrientation"),
        "sop_class_uid": _text(ds, "SOPClassUID"),
        "study_date": _text(ds, "StudyDate"),
        "study_time": _text(ds, "StudyTime"),
        "content_date": _text(ds, "ContentDate"),
        "content_time": _text(ds, "ContentTime"),
        "patient_id": _text(ds, "PatientID"),
        "study_instance_uid": _text(ds, "StudyInstanceUID"),
        "series_instance_uid": _text(ds, "SeriesInstanceUID"),
        "sop_instance_uid": _text(ds, "SOPInstanceUID"),
        "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID"),
        "pixel_spacing_mm": spacing,
        "pixel_spacing_source": source,
        "presentation_intent": _text(ds, "PresentationIntentType"),
        "transfer_syntax": str(syntax) if syntax else None,
        "frame": frame,
    }


def _view_code(ds: Any) -> str | None:
    """The code value of the view (View Code Sequence, its first item), or None: a header can hold an
    empty or malformed sequence."""
    try:
        return str(ds.ViewCodeSequence[0].CodeValue).strip() or None
    except (AttributeError, IndexError, TypeError, KeyError):
        return None


def _number(value: Any) -> float | None:
    """A DS value as a finite float, or None (absent, text, NaN, inf): a header can say anything."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(ds: Any, keyword: str) -> str | None:
    value = ds.get(keyword)
    return str(value).strip() or None if value is not None else None


def pixel_spacing_mm(ds: Any) -> tuple[list[float] | None, str | None]:
    """(row, column) spacing in mm at the breast, and which attribute it came from.

    Mammograms carry Imager Pixel Spacing (at the detector); the breast sits closer to the source, so
    sizes at the breast are smaller by the Estimated Radiographic Magnification Factor when recorded
    (PS3.3 C.8.11.7). Pixel Spacing, when a file has only that, is taken as calibrated already.
    """
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(keyword)
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if not all(SPACING_RANGE_MM[0] <= v <= SPACING_RANGE_MM[1] for v in (row, col)):  # NaN fails too
            say_once(log, ("pixel spacing", keyword), f"pixel spacing {keyword} {row:g} x {col:g} mm is outside "
                     f"{SPACING_RANGE_MM[0]:g}..{SPACING_RANGE_MM[1]:g} mm: treated as unknown, sizes in pixels "
                     "(further files like it: the same)")
            continue
        factor = _number(ds.get("EstimatedRadiographicMagnificationFactor"))
        if keyword == "ImagerPixelSpacing" and factor is not None and 1.0 < factor <= MAX_MAGNIFICATION:
            return [row / factor, col / factor], f"{keyword} / EstimatedRadiographicMagnificationFactor {factor:g}"
        return [row, col], keyword
    return None, None


def _sop_class_name(ds: Any) -> str:
    uid = ds.get("SOPClassUID")
    return f"{uid.name}" if uid is not None else "unknown"
