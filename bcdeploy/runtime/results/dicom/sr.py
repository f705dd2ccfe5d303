"""A DICOM Structured Report of the findings: TID 1500 Measurement Report, what a reading system lists.

One Comprehensive 3D SR per source image, same patient and study, a new series, COMPLETE and
UNVERIFIED (an algorithm's result, until a radiologist verifies it). Its content:
- the observer is a device: the model (name, version, a UID derived from the checkpoint's SHA-256);
- a report-level group (TID 1501) with the image's case score;
- one measurement group per lesion (TID 1410): the outline as a closed POLYLINE on the source image,
  the class as a qualitative evaluation, area and longest diameter (in mm where the image has a pixel
  spacing, else in pixels, said so by the unit), the lesion's score; the area references the lesion's
  segment in the SEG (its frame) when a SEG is written.

Codes: runtime/results/dicom/codes.py, the one table every DICOM writer reads (the class of a lesion is the
concept its SEG segment carries: the same entry).
Pixel coordinates follow PS3.3 C.18.6.1.1: (column, row) with 0,0 at the top left corner of the top left
pixel, so a pixel's centre is at +0.5.
"""

from __future__ import annotations

from typing import Any


from bcdeploy._imports import require
from bcdeploy.runtime.results.dicom import codes
from bcdeploy.runtime.results.dicom.codes import Algorithm
from bcdeploy.runtime.results.dicom.source import laterality_of
from bcdeploy.runtime.results.geometry import closed_outline


def sr_bytes(source: Any, lesions: list[dict[str, Any]], *, case_score: float | None, algorithm: Algorithm,
             uids: tuple[str, str], seg: tuple[str, str, dict[int, int]] | None = None) -> bytes:
    """The SR as a DICOM file's bytes. `source`: a checked copy (dicom_source.checked_source); `uids`:
    (series, SOP instance); `seg`: (series UID, SOP instance UID, class index -> segment number) of the
    SEG written for the same image, or None."""
    hd = require("highdicom", "Writing a DICOM SR")
    from pydicom.dataset import Dataset
    from pydicom.uid import SegmentationStorage

    context = observation_context(hd, algorithm)
    algorithm_id = hd.sr.AlgorithmIdentification(name=algorithm.short_name, version=algorithm.short_version,
                                                 parameters=[algorithm.parameters])
    sites = _finding_sites(hd, source)
    groups: list[Any] = []
    if case_score is not None:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(identifier="case score"),
            finding_type=codes.BREAST.code(), algorithm_id=algorithm_id, finding_sites=sites,
            measurements=[hd.sr.Measurement(name=codes.PROBABILITY_OF_CANCER.code(), value=float(case_score),
                                            unit=codes.NO_UNITS.code())],
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)]))
    region_source = hd.sr.SourceImageForRegion.from_source_image(source)
    for lesion in lesions:
        groups.append(_lesion_group(hd, lesion, region_source, algorithm_id, sites, seg))
    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=codes.MAMMOGRAPHY.code(),
                                     imaging_measurements=groups, title=codes.MEASUREMENT_REPORT.code())
    evidence = [source]
    if seg is not None:
        seg_ref = Dataset()
        seg_ref.SOPClassUID, seg_ref.SOPInstanceUID = SegmentationStorage, seg[1]
        seg_ref.SeriesInstanceUID, seg_ref.StudyInstanceUID = seg[0], source.StudyInstanceUID
        evidence.append(seg_ref)
    series = codes.SERIES["sr"]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=uids[0], series_number=series.number,
        sop_instance_uid=uids[1], instance_number=1, manufacturer="bcdeploy", is_complete=True, is_final=False,
        is_verified=False, series_description=series.description(algorithm))
    return codes.file_bytes(sr)


def observation_context(hd: Any, algorithm: Algorithm) -> Any:
    """TID 1002 with a device observer: the model (its UID from the checkpoint), as every SR of ours says."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=algorithm.uid, name=algorithm.short_name, manufacturer_name="bcdeploy", model_name=algorithm.short_version)
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DEVICE.code(), observer_identifying_attributes=device))


def _lesion_group(hd: Any, lesion: dict[str, Any], region_source: Any, algorithm_id: Any,
                  sites: list[Any], seg: tuple[str, str, dict[int, int]] | None) -> Any:
    region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                               graphic_data=closed_outline(lesion), source_image=region_source)
    from pydicom.uid import SegmentationStorage

    in_mm = lesion.get("area_mm2") is not None
    segment = None
    if seg is not None and lesion["class_index"] in seg[2]:
        number = seg[2][lesion["class_index"]]  # one frame per segment: frame k holds segment k
        segment = [hd.sr.SourceImageForMeasurement(referenced_sop_class_uid=SegmentationStorage,
                                                   referenced_sop_instance_uid=seg[1], referenced_frame_numbers=[number])]
    measurements = [
        hd.sr.Measurement(name=codes.AREA.code(), value=float(lesion["area_mm2"] if in_mm else lesion["area_px"]),
                          unit=(codes.SQUARE_MM if in_mm else codes.PIXELS).code(), referenced_images=segment),
        hd.sr.Measurement(name=codes.LONG_AXIS.code(),
                          value=float(lesion["longest_diameter_mm"] if in_mm else lesion["longest_diameter_px"]),
                          unit=(codes.MM if in_mm else codes.PIXELS).code()),
    ]
    if lesion.get("score") is not None:
        measurements.append(hd.sr.Measurement(name=codes.PROBABILITY_OF_CANCER.code(), value=float(lesion["score"]),
                                              unit=codes.NO_UNITS.code()))
    evaluations = []
    if lesion["class"].lower() in codes.CLASS_CONCEPTS:
        evaluations.append(hd.sr.QualitativeEvaluation(name=codes.PATHOLOGY.code(),
                                                       value=codes.class_concept(lesion["class"]).code()))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier=f"lesion {lesion['id']}"),
        referenced_region=region, finding_type=codes.LESION.code(), finding_category=codes.ABNORMAL_STRUCTURE.code(),
        algorithm_id=algorithm_id, finding_sites=sites, measurements=measurements,
        qualitative_evaluations=evaluations or None)


def _finding_sites(hd: Any, source: Any) -> list[Any]:
    laterality = codes.LATERALITY.get(laterality_of(source) or "")
    return [hd.sr.FindingSite(anatomic_location=codes.BREAST.code(), laterality=laterality.code() if laterality else None)]
