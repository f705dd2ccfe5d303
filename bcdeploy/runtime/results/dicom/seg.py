"""Write a predicted lesion mask back as a DICOM Segmentation (SEG) bound to its source image by UID.

What a PACS needs to show our result over the right image, and to know whose result it is:
- the source image's SOP instance and frame of reference are referenced, the patient and study are
  the source's, the SEG is a new series (results never overwrite or mix with acquired images);
- one BINARY segment per lesion class present, coded in SNOMED CT so viewers label it without our
  class names; a mask without any lesion still gives a SEG (its segments empty) so "analysed, nothing
  found" is distinguishable from "not analysed";
- every segment names the algorithm: model name, version, and the checkpoint's SHA-256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy import fileio
from bcdeploy._imports import require
from bcdeploy.errors import InputError
from bcdeploy.runtime.results.dicom import codes
from bcdeploy.runtime.results.dicom.codes import Algorithm

def segment_numbers(mask: np.ndarray, classes: list[str]) -> dict[int, int]:
    """Class index -> segment number in the SEG of `mask`: one segment per lesion class present, in class
    order (every lesion class when none is present: "analysed, nothing found")."""
    present = [k for k in range(1, len(classes)) if (mask == k).any()] or list(range(1, len(classes)))
    return {k: number for number, k in enumerate(present, 1)}


def build_seg(source: Any, mask: np.ndarray, classes: list[str], *, algorithm: Algorithm,
              series_number: int = codes.SERIES["seg"].number, uids: tuple[str, str] | None = None) -> Any:
    """A highdicom Segmentation of `source` (a pydicom Dataset) from a class-index mask at its size;
    `uids`: its (series, SOP instance) UIDs, new ones when None.

    `classes[0]` is the background; value k > 0 in `mask` is the lesion class `classes[k]`.
    """
    hd = require("highdicom", "Writing DICOM SEG")
    from pydicom.uid import generate_uid

    _check_source(source, mask, classes)
    series_uid, sop_uid = uids or (generate_uid(), generate_uid())
    present = list(segment_numbers(mask, classes))
    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm.short_name, version=algorithm.short_version, family=codes.ARTIFICIAL_INTELLIGENCE.coded(),
        parameters={"checkpoint_sha256": algorithm.checkpoint_sha256},
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number, segment_label=classes[k][:64],
            segmented_property_category=codes.ABNORMAL_STRUCTURE.coded(),
            segmented_property_type=codes.class_concept(classes[k]).coded(),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification, anatomic_regions=[codes.BREAST.coded()],
        )
        for number, k in enumerate(present, 1)
    ]
    # A label map (segment numbers) rather than one boolean plane per segment: highdicom writes the same
    # SEG from it, 4-6x faster on a 13.6 MP mammogram (its per-plane checks dominate otherwise).
    to_segment = np.zeros(len(classes), np.uint8)
    to_segment[present] = np.arange(1, len(present) + 1)
    labels = to_segment[mask][np.newaxis]  # (1, rows, cols)
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=labels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=series_uid, series_number=series_number,
        sop_instance_uid=sop_uid, instance_number=1, manufacturer="bcdeploy",
        manufacturer_model_name=algorithm.short_name, software_versions=_bcdeploy_version(),
        device_serial_number=algorithm.checkpoint_sha256[:16], series_description=codes.SERIES["seg"].description(algorithm),
        omit_empty_frames=False, content_label="LESIONS",
    )
    if "PlaneOrientationSequence" not in seg.SharedFunctionalGroupsSequence[0]:
        # A projection image (MG) has no patient plane: General Image then needs Patient Orientation (2C).
        seg.PatientOrientation = source.get("PatientOrientation", "")
    return seg


def seg_bytes(source: Any, mask: np.ndarray, classes: list[str], *, algorithm: Algorithm,
              uids: tuple[str, str] | None = None) -> bytes:
    """The SEG as a DICOM file's bytes (the run's writer stores them atomically like every output)."""
    return codes.file_bytes(build_seg(source, mask, classes, algorithm=algorithm, uids=uids))


def write_seg(path: str | Path, source: Any, mask: np.ndarray, classes: list[str], *,
              algorithm: Algorithm) -> Path:
    """Build the SEG and write it atomically to `path`; returns the path."""
    fileio.write_bytes(path, seg_bytes(source, mask, classes, algorithm=algorithm))
    return Path(path)


def seg_masks(seg: Any) -> dict[str, np.ndarray]:
    """Segment label -> (rows, cols) bool mask, read from a SEG dataset (pydicom or highdicom)."""
    hd = require("highdicom", "Reading DICOM SEG")
    seg = seg if isinstance(seg, hd.seg.Segmentation) else hd.seg.Segmentation.from_dataset(seg)
    out = {}
    for number in seg.segment_numbers:
        label = seg.get_segment_description(number).segment_label
        frames = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID],
            segment_numbers=[number], assert_missing_frames_are_empty=True,
        )
        out[label] = frames[0, ..., 0].astype(bool)
    return out


def _check_source(source: Any, mask: np.ndarray, classes: list[str]) -> None:
    shape = (int(source.Rows), int(source.Columns))
    if mask.shape != shape:
        raise InputError(f"SEG for {source.SOPInstanceUID}: mask is {mask.shape[1]}x{mask.shape[0]}, the source image "
                         f"is {shape[1]}x{shape[0]}; a SEG mask must be at the source image's size")
    if int(source.get("NumberOfFrames", 1) or 1) > 1:
        raise InputError(f"SEG for {source.SOPInstanceUID}: multi-frame sources are not supported yet")
    if len(classes) < 2 or int(mask.max(initial=0)) >= len(classes):
        raise InputError(f"SEG for {source.SOPInstanceUID}: mask values up to {int(mask.max(initial=0))} "
                         f"but {len(classes)} classes {classes}")


def _bcdeploy_version() -> str:
    from bcdeploy.versions import package_versions

    return " ".join(["bcdeploy", *package_versions("bcdeploy").values()])
