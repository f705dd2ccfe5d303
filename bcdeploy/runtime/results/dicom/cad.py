"""The Mammography CAD SR (TID 4000): one per study, what a mammography workstation draws as CAD marks.

The tree follows PS3.16's templates for the Mammography CAD SR IOD (SOP Class 1.2.840.10008.5.1.4.1.1.88.50):

    CONTAINER Mammography CAD Report                                  TID 4000
      HAS CONCEPT MOD  CODE Language of Content Item and Descendants  TID 1204
      CONTAINS  CONTAINER Image Library
        CONTAINS  IMAGE (each image of the study, failed ones too)    TID 4020: laterality, view,
                  patient orientation, study/content date and time, pixel spacing (um), rows/columns
      CONTAINS  CODE CAD Processing and Findings Summary (CID 6047)   TID 4001
        HAS PROPERTIES  TEXT Impression Description, NUM Probability of cancer = the study's case score (%)
        INFERRED FROM  CONTAINER Individual Impression/Recommendation  TID 4003, one per lesion
          HAS CONCEPT MOD  CODE Rendering Intent
          CONTAINS  CODE Single Image Finding = Mass | Calcification Cluster        TID 4006
            HAS CONCEPT MOD  CODE Rendering Intent (Required at or above the operating point, else Optional)
            HAS CONCEPT MOD  TEXT Algorithm Name > Algorithm Version, Parameters   TID 4019
            HAS PROPERTIES   NUM Certainty of Finding = the lesion's score (%)
            HAS PROPERTIES   NUM Probability of cancer (a malignant class's lesion: its score, %)
            HAS PROPERTIES   SCOORD Center (POINT) > R-SELECTED FROM the image's library entry   TID 4021
            HAS PROPERTIES   SCOORD Outline (POLYLINE, closed) > R-SELECTED FROM the same
      CONTAINS  CODE Summary of Detections = Succeeded | Partially Succeeded | Failed
        INFERRED FROM  CONTAINER Successful Detections / Failed Detections          TID 4015
          CONTAINS  CODE Detection Performed = Mass ...                             TID 4017
            HAS CONCEPT MOD  TID 4019; R-INFERRED FROM each image it ran on (or failed on)
      CONTAINS  CODE Summary of Analyses = Not Attempted (no composite features are made)

A failed image is listed in the Image Library and under Failed Detections: never silence. References
to images inside the tree are by reference to their Image Library entry, as TID 4017 and 4021 ask;
highdicom's content classes refuse by-reference relationships, so the tree is built as plain pydicom
items and highdicom writes the document's modules (patient, study, series, SR document general,
evidence) around it. Codes come from codes.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bcdeploy._imports import require
from bcdeploy.runtime.results.dicom import codes
from bcdeploy.runtime.results.dicom.codes import Algorithm, Concept
from bcdeploy.runtime.results.dicom.source import valid_for_vr, valid_orientation

MAMMOGRAPHY_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"


@dataclass(frozen=True)
class CadImage:
    """One image of the study as the CAD SR lists it: its reference, what TID 4020 describes, and its
    result (lesions, case score) or the line that says why it failed."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    laterality: str | None = None  # L | R
    view_position: str | None = None  # CC, MLO, ... (ViewPosition)
    view_code: str | None = None  # the View Code Sequence's code value (CID 4014)
    patient_orientation: str | None = None  # "A\\R"
    study_date: str | None = None
    study_time: str | None = None
    content_date: str | None = None
    content_time: str | None = None
    spacing_mm: Sequence[float] | None = None  # (row, column)
    size: Sequence[int] | None = None  # (columns, rows)
    lesions: list[dict[str, Any]] = field(default_factory=list)
    case_score: float | None = None
    error: str | None = None  # set for an image that failed

    @classmethod
    def from_record(cls, image: dict[str, Any], lesions: list[dict[str, Any]], error: str | None) -> CadImage | None:
        """From a ledger row's image JSON (runtime/images/dicom.py::dicom_tags in `tags`), or None when it
        does not name a DICOM instance."""
        tags = image.get("tags") or {}
        if not all(tags.get(k) for k in ("sop_class_uid", "sop_instance_uid", "series_instance_uid")):
            return None
        return cls(tags["sop_class_uid"], tags["sop_instance_uid"], tags["series_instance_uid"],
                   laterality=tags.get("laterality"), view_position=tags.get("view_position"),
                   view_code=tags.get("view_code"), patient_orientation=tags.get("patient_orientation"),
                   study_date=tags.get("study_date"), study_time=tags.get("study_time"),
                   content_date=tags.get("content_date"), content_time=tags.get("content_time"),
                   spacing_mm=tags.get("pixel_spacing_mm"), size=image.get("size"), lesions=lesions,
                   case_score=image.get("case_score"), error=error)


def cad_bytes(images: Sequence[CadImage], header: Any, *, study_uid: str, algorithm: Algorithm, threshold: float,
              uids: tuple[str, str]) -> bytes:
    """The CAD SR of one study as a DICOM file's bytes. `header`: the study's Patient and Study attributes
    (source.header_dataset); `threshold`: the operating point (a lesion scoring at least this is a
    'Presentation Required' mark); `uids`: (series, SOP instance)."""
    hd = require("highdicom", "Writing a Mammography CAD SR")
    from pydicom.dataset import Dataset

    done = [image for image in images if image.error is None]
    failed = [image for image in images if image.error is not None]
    library = _container(codes.IMAGE_LIBRARY, "CONTAINS", [])
    # By-reference targets: root item 1 is the language, 2 the library; entry k is [1, 2, k].
    entry_of = {image.sop_instance_uid: [1, 2, k] for k, image in enumerate(images, 1)}
    # Added once highdicom is done: by-reference children, and the library's IMAGE items (its evidence
    # search reads every item's concept name, and a library entry has none, as TID 4020 says)
    later: list[tuple[Dataset, list[Dataset]]] = [(library, [_library_entry(image) for image in images])]
    impressions = []
    for image in done:
        for lesion in image.lesions:
            item, refs = _finding(image, lesion, entry_of[image.sop_instance_uid], algorithm, threshold)
            later += refs
            impressions.append(_container(codes.INDIVIDUAL_IMPRESSION, "INFERRED FROM",
                                          [_code(codes.RENDERING_INTENT, _intent(lesion, threshold), "HAS CONCEPT MOD"),
                                           item]))
    summary = _code(codes.FINDINGS_SUMMARY, _findings_summary(done, failed, bool(impressions)), "CONTAINS")
    summary.ContentSequence = [*_impression(done), *impressions]
    detections, refs = _detections(done, failed, entry_of, algorithm)
    later += refs
    root = _container(codes.MAMMOGRAPHY_CAD_REPORT, None, [
        _code(codes.LANGUAGE_OF_CONTENT, codes.ENGLISH, "HAS CONCEPT MOD"), library, summary, *detections,
        _code(codes.SUMMARY_OF_ANALYSES, codes.NOT_ATTEMPTED, "CONTAINS")])
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "4000"
    root.ContentTemplateSequence = [template]
    series = codes.SERIES["cad"]
    sr = hd.sr.sop._SR(
        evidence=[_evidence(image, header, study_uid) for image in images], content=root,
        series_instance_uid=uids[0], series_number=series.number, sop_instance_uid=uids[1],
        sop_class_uid=MAMMOGRAPHY_CAD_SR, instance_number=1, manufacturer="bcdeploy", is_complete=True,
        is_final=False, is_verified=False, series_description=series.description(algorithm))
    for parent, children in later:  # the Datasets `root` holds are the ones the document holds
        parent.ContentSequence = [*parent.get("ContentSequence", []), *children]
    sr.ContentSequence = root.ContentSequence
    sr.CurrentRequestedProcedureEvidenceSequence = [_evidence_sequence(images, study_uid)]
    return codes.file_bytes(sr)


def study_score(images: Sequence[CadImage]) -> float | None:
    """The study's case score, as cases.csv gives it: the highest of its images' (None when none has one)."""
    scores = [image.case_score for image in images if image.error is None and image.case_score is not None]
    return max(scores) if scores else None


# --- the sub-trees -----------------------------------------------------------------------------------
def _library_entry(image: CadImage) -> Any:
    """TID 4020: the image and what a workstation needs to hang and orient it. Each row is present only
    where the image said it (nothing guessed)."""
    context: list[Any] = []
    side = codes.SIDE.get(image.laterality or "")
    if side:
        context.append(_code(codes.IMAGE_LATERALITY, side, "HAS ACQ CONTEXT"))
    view = codes.VIEW_CODES.get(image.view_code or "") or codes.VIEWS.get((image.view_position or "").upper())
    if view:
        context.append(_code(codes.IMAGE_VIEW, view, "HAS ACQ CONTEXT"))
    if image.patient_orientation and valid_orientation(image.patient_orientation):
        row, column = image.patient_orientation.split("\\")
        context += [_text(codes.PATIENT_ORIENTATION_ROW, row, "HAS ACQ CONTEXT"),
                    _text(codes.PATIENT_ORIENTATION_COLUMN, column, "HAS ACQ CONTEXT")]
    for concept, value, kind in ((codes.STUDY_DATE, image.study_date, "DATE"),
                                 (codes.STUDY_TIME, image.study_time, "TIME"),
                                 (codes.CONTENT_DATE, image.content_date, "DATE"),
                                 (codes.CONTENT_TIME, image.content_time, "TIME")):
        if value and valid_for_vr("DA" if kind == "DATE" else "TM", value):
            context.append(_moment(concept, kind, value))
    if image.spacing_mm:
        row, column = image.spacing_mm
        context += [_num(codes.HORIZONTAL_PIXEL_SPACING, column * 1000, codes.MICROMETER, "HAS ACQ CONTEXT"),
                    _num(codes.VERTICAL_PIXEL_SPACING, row * 1000, codes.MICROMETER, "HAS ACQ CONTEXT")]
    if image.size:
        columns, rows = image.size
        context += [_num(codes.PIXEL_DATA_ROWS, rows, codes.PIXELS, "HAS ACQ CONTEXT"),
                    _num(codes.PIXEL_DATA_COLUMNS, columns, codes.PIXELS, "HAS ACQ CONTEXT")]
    entry = _image(image, "CONTAINS")
    if context:
        entry.ContentSequence = context
    return entry


def _finding(image: CadImage, lesion: dict[str, Any], entry: list[int], algorithm: Algorithm,
             threshold: float) -> tuple[Any, list[tuple[Any, list[Any]]]]:
    """TID 4006 for one lesion, and the by-reference children its SCOORDs get later."""
    from bcdeploy.runtime.results.geometry import closed_outline

    score = lesion.get("score")
    properties: list[Any] = []
    if score is not None:
        properties.append(_num(codes.CERTAINTY_OF_FINDING, 100 * float(score), codes.PERCENT, "HAS PROPERTIES"))
        if codes.class_concept(lesion["class"]) is codes.MALIGNANT:
            properties.append(_num(codes.PROBABILITY_OF_CANCER, 100 * float(score), codes.PERCENT, "HAS PROPERTIES"))
    x, y = lesion["centroid"]
    center = _scoord(codes.CENTER, "POINT", [float(x) + 0.5, float(y) + 0.5])
    outline = _scoord(codes.OUTLINE, "POLYLINE", [float(v) for point in closed_outline(lesion) for v in point])
    finding = _code(codes.SINGLE_IMAGE_FINDING, codes.finding_concept(lesion["class"]), "CONTAINS")
    finding.ContentSequence = [_code(codes.RENDERING_INTENT, _intent(lesion, threshold), "HAS CONCEPT MOD"),
                               *_algorithm(algorithm), *properties, center, outline]
    return finding, [(center, [_by_reference("SELECTED FROM", entry)]),
                     (outline, [_by_reference("SELECTED FROM", entry)])]


def _detections(done: Sequence[CadImage], failed: Sequence[CadImage], entry_of: dict[str, list[int]],
                algorithm: Algorithm) -> tuple[list[Any], list[tuple[Any, list[Any]]]]:
    """Summary of Detections (TID 4015/4017): the detection and the images it succeeded and failed on."""
    status = codes.SUCCEEDED if not failed else codes.FAILED if not done else codes.PARTIALLY_SUCCEEDED
    summary = _code(codes.SUMMARY_OF_DETECTIONS, status, "CONTAINS")
    later = []
    groups = []
    for concept, images in ((codes.SUCCESSFUL_DETECTIONS, done), (codes.FAILED_DETECTIONS, failed)):
        if not images:
            continue
        performed = _code(codes.DETECTION_PERFORMED, codes.MASS, "CONTAINS")
        performed.ContentSequence = _algorithm(algorithm)
        later.append((performed, [_by_reference("INFERRED FROM", entry_of[i.sop_instance_uid]) for i in images]))
        groups.append(_container(concept, "INFERRED FROM", [performed]))
    summary.ContentSequence = groups
    return [summary], later


def _impression(done: Sequence[CadImage]) -> list[Any]:
    """TID 4002 under the overall impression: the study's case score, said in words and as a number."""
    score = study_score(done)
    if score is None:
        return []
    words = (f"bcdeploy case score {score:.4f}: the highest malignant-class probability over the study's "
             f"{len(done)} segmented image(s)")
    return [_text(codes.IMPRESSION_DESCRIPTION, words[:1024], "HAS PROPERTIES"),
            _num(codes.PROBABILITY_OF_CANCER, 100 * score, codes.PERCENT, "HAS PROPERTIES")]


def _findings_summary(done: Sequence[CadImage], failed: Sequence[CadImage], findings: bool) -> Concept:
    if not done:
        return codes.SUMMARY_NONE_SUCCEEDED
    if failed:
        return codes.SUMMARY_SOME_FAILED_WITH_FINDINGS if findings else codes.SUMMARY_SOME_FAILED_WITHOUT_FINDINGS
    return codes.SUMMARY_WITH_FINDINGS if findings else codes.SUMMARY_WITHOUT_FINDINGS


def _intent(lesion: dict[str, Any], threshold: float) -> Concept:
    score = lesion.get("score")
    required = score is None or float(score) >= threshold  # an argmax model's lesion has no score: shown
    return codes.PRESENTATION_REQUIRED if required else codes.PRESENTATION_OPTIONAL


def _algorithm(algorithm: Algorithm) -> list[Any]:
    """TID 4019 as highdicom builds it for the TID 1500 SR (sr.py): name, version and parameters (the
    checkpoint's SHA-256), side by side under the item they identify the algorithm of."""
    hd = require("highdicom", "Writing a Mammography CAD SR")

    return list(hd.sr.AlgorithmIdentification(name=algorithm.short_name, version=algorithm.short_version,
                                              parameters=[algorithm.parameters]))


def _evidence(image: CadImage, header: Any, study_uid: str) -> Any:
    """What highdicom needs of a referenced image: its UIDs, and (the first one) the patient and study
    attributes the document copies."""
    evidence = header.copy()
    evidence.SOPClassUID, evidence.SOPInstanceUID = image.sop_class_uid, image.sop_instance_uid
    evidence.SeriesInstanceUID, evidence.StudyInstanceUID = image.series_instance_uid, study_uid
    return evidence


def _evidence_sequence(images: Sequence[CadImage], study_uid: str) -> Any:
    """The study's item of the Current Requested Procedure Evidence Sequence: every image the report
    references, by series (highdicom finds them by walking the tree, which the library is not in when
    it looks)."""
    from pydicom.dataset import Dataset

    series: dict[str, list[Any]] = {}
    for image in images:
        reference = Dataset()
        reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = (image.sop_class_uid,
                                                                               image.sop_instance_uid)
        series.setdefault(image.series_instance_uid, []).append(reference)
    study = Dataset()
    study.StudyInstanceUID = study_uid
    study.ReferencedSeriesSequence = []
    for uid, references in series.items():
        item = Dataset()
        item.SeriesInstanceUID, item.ReferencedSOPSequence = uid, references
        study.ReferencedSeriesSequence.append(item)
    return study


# --- content items, as PS3.3 C.17.3 spells them --------------------------------------------------------
def _item(concept: Concept | None, value_type: str, relationship: str | None) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    if relationship:
        item.RelationshipType = relationship
    item.ValueType = value_type
    if concept is not None:
        item.ConceptNameCodeSequence = [_coded(concept)]
    return item


def _coded(concept: Concept) -> Any:
    from pydicom.dataset import Dataset

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = concept.value, concept.scheme, concept.meaning
    return code


def _container(concept: Concept, relationship: str | None, children: list[Any]) -> Any:
    item = _item(concept, "CONTAINER", relationship)
    item.ContinuityOfContent = "SEPARATE"
    if children:
        item.ContentSequence = children
    return item


def _code(concept: Concept, value: Concept, relationship: str) -> Any:
    item = _item(concept, "CODE", relationship)
    item.ConceptCodeSequence = [_coded(value)]
    return item


def _text(concept: Concept, value: str, relationship: str) -> Any:
    item = _item(concept, "TEXT", relationship)
    item.TextValue = value
    return item


def _moment(concept: Concept, value_type: str, value: str) -> Any:
    item = _item(concept, value_type, "HAS ACQ CONTEXT")
    setattr(item, "Date" if value_type == "DATE" else "Time", value)
    return item


def _num(concept: Concept, value: float, unit: Concept, relationship: str) -> Any:
    from pydicom.dataset import Dataset
    from pydicom.valuerep import format_number_as_ds

    item = _item(concept, "NUM", relationship)
    measured = Dataset()
    measured.NumericValue = format_number_as_ds(float(value))
    measured.MeasurementUnitsCodeSequence = [_coded(unit)]
    item.MeasuredValueSequence = [measured]
    return item


def _scoord(concept: Concept, graphic_type: str, data: list[float]) -> Any:
    item = _item(concept, "SCOORD", "HAS PROPERTIES")
    item.GraphicType, item.GraphicData = graphic_type, data
    return item


def _image(image: CadImage, relationship: str) -> Any:
    from pydicom.dataset import Dataset

    item = _item(None, "IMAGE", relationship)
    reference = Dataset()
    reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = image.sop_class_uid, image.sop_instance_uid
    item.ReferencedSOPSequence = [reference]
    return item


def _by_reference(relationship: str, target: list[int]) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.RelationshipType = relationship
    item.ReferencedContentItemIdentifier = list(target)
    return item
