"""A Secondary Capture of the overlay, for viewers that show neither SEG nor SR.

The overlay (outlines, class labels and scores burned into the pixels) as an RGB SC image of the same
patient and study, a new series, `BurnedInAnnotation YES` (the pixels carry text: anonymisers must
know) and a derivation description naming the model. A viewing copy: its long side is at most
MAX_SIDE pixels (a 14-Mpx mammogram would make a 42 MB SC for a picture nobody measures on), and it
has no pixel spacing, since nothing should be measured on it; the SR and SEG carry the measurements.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bcdeploy._imports import require
from bcdeploy.runtime.results.dicom import codes
from bcdeploy.runtime.results.dicom.codes import Algorithm
from bcdeploy.runtime.results.dicom.source import laterality_of

MAX_SIDE = 2048
_DIRECTIONS = set("APRLHF")


def sc_bytes(source: Any, overlay_bgr: np.ndarray, *, algorithm: Algorithm, uids: tuple[str, str]) -> bytes:
    """The SC as a DICOM file's bytes; `source` is a checked copy (dicom_source.checked_source),
    `uids` the (series, SOP instance) UIDs."""
    import cv2

    hd = require("highdicom", "Writing a DICOM Secondary Capture")
    height, width = overlay_bgr.shape[:2]
    factor = min(1.0, MAX_SIDE / max(height, width))
    if factor < 1.0:
        overlay_bgr = cv2.resize(overlay_bgr, (max(1, round(width * factor)), max(1, round(height * factor))),
                                 interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(overlay_bgr[..., ::-1])
    orientation = _orientation(source.get("PatientOrientation"))
    laterality = laterality_of(source)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=uids[0], series_number=codes.SERIES["sc"].number,
        sop_instance_uid=uids[1], instance_number=1, manufacturer="bcdeploy",
        patient_orientation=orientation or ("A", "R"), laterality=laterality,
    )
    if orientation is None:  # unknown at the source: Type 2, so present and empty, never guessed
        sc.PatientOrientation = ""
    if laterality is None:  # a breast is a paired body part: Type 2C, present and empty when unknown
        sc.Laterality = ""
    sc.BurnedInAnnotation = "YES"
    sc.DerivationDescription = (f"Overlay of lesions segmented by {algorithm.name} ({algorithm.version}); "
                                f"outlines, classes and scores burned in")[:1024]
    sc.SeriesDescription = codes.SERIES["sc"].description(algorithm)
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.SourceImageSequence = [_reference(source)]  # the image it was derived from: a PACS links the two
    return codes.file_bytes(sc)


def _reference(source: Any) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = source.SOPClassUID, source.SOPInstanceUID
    return item


def _orientation(value: Any) -> tuple[str, str] | None:
    """The source's two single-letter direction codes, or None (absent, empty, or combined codes)."""
    if not value:
        return None
    values = [str(v) for v in (value if not isinstance(value, str) else value.split("\\"))]
    if len(values) == 2 and all(v in _DIRECTIONS for v in values):
        return values[0], values[1]
    return None
