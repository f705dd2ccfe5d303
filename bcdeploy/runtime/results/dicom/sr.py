"""A DICOM Structured Report of the findings: TID 1500 Measurement Report, what a reading system lists.

One Comprehensive 3D SR per source image, same patient and study, a new series, COMPLETE and
UNVERIFIED (an algorithm's result, until a radiologist verifies it). Its content:
- the observer is a device: the model (name, version, a UID derived from the checkpoint's SHA-256);
- a report-level group (TID 1501) with the image's case score;
- one measurement group per lesion (TID 1410): the outline as a closed POLYLINE on the source image,
  the class as a qualitative evaluation, area and longest diameter (in mm where the image has a pixel
  spacing, else in pixels, said so by the unit), the lesion's score; the area references the lesion's
  segment in the SEG (its frame) when a SEG is written.

Codes (DICOM PS3.16), and where each comes from:
- document title        DCM 126000 "Imaging Measurement Report"              CID 7021 Measurement Report Document Title
- procedure reported    SCT 71651007 "Mammography"                           (a breast procedure code; CID 6058 lists it)
- finding type          SCT 52988006 "Lesion"                                CID 7151 Segmentation Property Type
- finding category      SCT 49755003 "Morphologically Altered Structure"    CID 7150 Segmentation Property Category
- finding site          SCT 76752008 "Breast"                                CID 4013 Anatomic Region for Mammography
  with laterality       SCT 7771000 "Left" / 24028007 "Right"                CID 244 Laterality
- class                 DCM 111042 "Pathology" = SCT 3898006 "Neoplasm, benign" / 86049000 "Malignant neoplasm,
                        primary": the codes the SEG's segments carry (runtime/results/dicom/seg.py), so SR and SEG agree
- area                  SCT 42798000 "Area"                                  CID 7469/7471 (area measurements)
- longest diameter      SCT 103339001 "Long axis"                            CID 6165 Breast Linear Measurement
- lesion and case score DCM 111047 "Probability of cancer"                   CID 6048 CAD Operating Point Axis Label
- units (UCUM)          mm2, mm; `{pixels}` where the spacing is unknown; 1 (no units) for probabilities
Pixel coordinates follow PS3.3 C.18.6.1.1: (column, row) with 0,0 at the top left corner of the top left
pixel, so a pixel's centre is at +0.5.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np

from bcdeploy._imports import require
from bcdeploy.runtime.results.dicom.source import laterality_of

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
_CLASS_VALUES = {"benign": ("3898006", "SCT", "Neoplasm, benign"),
                 "malignant": ("86049000", "SCT", "Malignant neoplasm, primary")}


def sr_bytes(source: Any, lesions: list[dict[str, Any]], *, case_score: float | None, algorithm: Any,
             uids: tuple[str, str], seg: tuple[str, str, dict[int, int]] | None = None,
             series_number: int = 901) -> bytes:
    """The SR as a DICOM file's bytes. `source`: a checked copy (dicom_source.checked_source); `uids`:
    (series, SOP instance); `seg`: (series UID, SOP instance UID, class index -> segment number) of the
    SEG written for the same image, or None."""
    hd = require("highdicom", "Writing a DICOM SR")
    from pydicom.dataset import Dataset
    from pydicom.sr.coding import Code

    codes = _Codes(Code)
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=_algorithm_uid(algorithm), name=algorithm.name[:64], manufacturer_name="bcdeploy",
        model_name=algorithm.version[:64])
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=Code("121007", "DCM", "Device"), observer_identifying_attributes=device))
    algorithm_id = hd.sr.AlgorithmIdentification(name=algorithm.name[:64], version=algorithm.version[:64],
                                                 parameters=[f"checkpoint_sha256={algorithm.checkpoint_sha256}"])
    sites = _finding_sites(hd, codes, source)
    groups: list[Any] = []
    if case_score is not None:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(identifier="case score"),
            finding_type=codes.breast, algorithm_id=algorithm_id, finding_sites=sites,
            measurements=[hd.sr.Measurement(name=codes.probability, value=float(case_score), unit=codes.no_units)],
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)]))
    region_source = hd.sr.SourceImageForRegion.from_source_image(source)
    for lesion in lesions:
        groups.append(_lesion_group(hd, codes, lesion, region_source, algorithm_id, sites, seg))
    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=codes.mammography,
                                     imaging_measurements=groups, title=codes.title)
    evidence = [source]
    if seg is not None:
        seg_ref = Dataset()
        seg_ref.SOPClassUID, seg_ref.SOPInstanceUID = SEGMENTATION_STORAGE, seg[1]
        seg_ref.SeriesInstanceUID, seg_ref.StudyInstanceUID = seg[0], source.StudyInstanceUID
        evidence.append(seg_ref)
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=uids[0], series_number=series_number,
        sop_instance_uid=uids[1], instance_number=1, manufacturer="bcdeploy", is_complete=True, is_final=False,
        is_verified=False, series_description=f"bcdeploy findings {algorithm.name}"[:64])
    buffer = io.BytesIO()
    sr.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


class _Codes:
    """The codes of the module docstring, built once per report."""

    def __init__(self, code: Any) -> None:
        self.title = code("126000", "DCM", "Imaging Measurement Report")
        self.mammography = code("71651007", "SCT", "Mammography")
        self.lesion = code("52988006", "SCT", "Lesion")
        self.category = code("49755003", "SCT", "Morphologically Altered Structure")
        self.breast = code("76752008", "SCT", "Breast")
        self.laterality = {"L": code("7771000", "SCT", "Left"), "R": code("24028007", "SCT", "Right")}
        self.pathology = code("111042", "DCM", "Pathology")
        self.classes = {name: code(*value) for name, value in _CLASS_VALUES.items()}
        self.area = code("42798000", "SCT", "Area")
        self.long_axis = code("103339001", "SCT", "Long axis")
        self.probability = code("111047", "DCM", "Probability of cancer")
        self.mm2, self.mm = code("mm2", "UCUM", "square millimeter"), code("mm", "UCUM", "millimeter")
        self.pixels = code("{pixels}", "UCUM", "pixels")
        self.no_units = code("1", "UCUM", "no units")


def _lesion_group(hd: Any, codes: _Codes, lesion: dict[str, Any], region_source: Any, algorithm_id: Any,
                  sites: list[Any], seg: tuple[str, str, dict[int, int]] | None) -> Any:
    region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                               graphic_data=_closed_outline(lesion), source_image=region_source)
    in_mm = lesion.get("area_mm2") is not None
    segment = None
    if seg is not None and lesion["class_index"] in seg[2]:
        number = seg[2][lesion["class_index"]]  # one frame per segment: frame k holds segment k
        segment = [hd.sr.SourceImageForMeasurement(referenced_sop_class_uid=SEGMENTATION_STORAGE,
                                                   referenced_sop_instance_uid=seg[1], referenced_frame_numbers=[number])]
    measurements = [
        hd.sr.Measurement(name=codes.area, value=float(lesion["area_mm2"] if in_mm else lesion["area_px"]),
                          unit=codes.mm2 if in_mm else codes.pixels, referenced_images=segment),
        hd.sr.Measurement(name=codes.long_axis,
                          value=float(lesion["longest_diameter_mm"] if in_mm else lesion["longest_diameter_px"]),
                          unit=codes.mm if in_mm else codes.pixels),
    ]
    if lesion.get("score") is not None:
        measurements.append(hd.sr.Measurement(name=codes.probability, value=float(lesion["score"]), unit=codes.no_units))
    evaluations = []
    if lesion["class"].lower() in codes.classes:
        evaluations.append(hd.sr.QualitativeEvaluation(name=codes.pathology, value=codes.classes[lesion["class"].lower()]))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier=f"lesion {lesion['id']}"),
        referenced_region=region, finding_type=codes.lesion, finding_category=codes.category,
        algorithm_id=algorithm_id, finding_sites=sites, measurements=measurements,
        qualitative_evaluations=evaluations or None)


def _closed_outline(lesion: dict[str, Any]) -> np.ndarray:
    """The outline's vertices at pixel centres, first vertex repeated last (a closed polyline); a lesion
    too small for a polygon (under 3 vertices) is outlined by its bounding box."""
    points = [list(p) for p in lesion.get("outline") or []]
    if len(points) < 3:
        x, y, w, h = lesion["bbox"]
        points = [[x, y], [x + w - 1, y], [x + w - 1, y + h - 1], [x, y + h - 1]]
    return np.asarray([*points, points[0]], np.float64) + 0.5


def _finding_sites(hd: Any, codes: _Codes, source: Any) -> list[Any]:
    laterality = codes.laterality.get(laterality_of(source) or "")
    return [hd.sr.FindingSite(anatomic_location=codes.breast, laterality=laterality)]


def _algorithm_uid(algorithm: Any) -> str:
    """A UID for the model, the same for every report of the same checkpoint (2.25 + a 128-bit number)."""
    digest = hashlib.sha256(f"{algorithm.name}|{algorithm.checkpoint_sha256}".encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"
