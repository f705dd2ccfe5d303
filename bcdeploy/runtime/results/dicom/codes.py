"""Every coded concept bcdeploy's DICOM objects carry (SEG, TID 1500 SR, SC, Mammography CAD SR), each once.

Taken from pydicom's code dictionary (`pydicom.sr.codedict.codes`, generated from PS3.16) where it holds
the concept, so value, scheme and meaning are the standard's, spelled as the standard spells them; our
own entries (marked `own`) are concepts pydicom does not list. Each entry names the context group
(CID) or template row it is drawn from. A writer takes its codes from here and holds no code literal
(tests/runtime/test_dicom_codes.py reads the writers' source to hold that), so the SEG and the SR name a
class with one code and one meaning: they read the same entry.

Also here, because every object shares them: the algorithm's identity (one typed object), the
series numbers and descriptions of our result series, and the one "dataset to file bytes" step.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Concept:
    """A coded concept: (value, scheme, meaning) and the CID or template row it comes from."""

    value: str
    scheme: str
    meaning: str
    source: str

    def code(self) -> Any:
        """As pydicom's Code (what highdicom's constructors take)."""
        from pydicom.sr.coding import Code

        return Code(self.value, self.scheme, self.meaning)

    def coded(self) -> Any:
        """As highdicom's CodedConcept (a dataset item)."""
        from highdicom.sr import CodedConcept

        return CodedConcept(value=self.value, scheme_designator=self.scheme, meaning=self.meaning)


def _std(scheme: str, keyword: str, source: str) -> Concept:
    """A concept from pydicom's dictionary of PS3.16 codes."""
    from pydicom.sr.codedict import codes

    code = getattr(getattr(codes, scheme), keyword)
    return Concept(code.value, code.scheme_designator, code.meaning, source)


def _own(value: str, scheme: str, meaning: str, source: str) -> Concept:
    """A concept pydicom's dictionary does not hold."""
    return Concept(value, scheme, meaning, source)


# --- anatomy and procedure -------------------------------------------------------------------------
MAMMOGRAPHY = _std("SCT", "Mammography", "CID 6058 (procedure reported)")
BREAST = _std("SCT", "Breast", "CID 4013 Anatomic Region for Mammography")
LATERALITY = {"L": _std("SCT", "Left", "CID 244 Laterality"), "R": _std("SCT", "Right", "CID 244 Laterality")}

# --- findings and classes --------------------------------------------------------------------------
LESION = _std("SCT", "Lesion", "CID 7151 Segmentation Property Type")
ABNORMAL_STRUCTURE = _std("SCT", "MorphologicallyAbnormalStructure", "CID 7150 Segmentation Property Category")
PATHOLOGY = _std("DCM", "Pathology", "TID 1419 qualitative evaluation name")
BENIGN = _own("3898006", "SCT", "Neoplasm, benign", "CID 7151 Segmentation Property Type")
MALIGNANT = _std("SCT", "MalignantNeoplasmPrimary", "CID 7151 Segmentation Property Type")
MASS = _std("SCT", "Mass", "CID 6014 Single Image Finding (mammography) / CID 7151")
CALCIFICATION = _std("SCT", "RadiographicCalcificationFinding", "CID 6055 Calcification Type")
CALCIFICATION_CLUSTER = _std("SCT", "CalcificationCluster", "CID 6014 Mammography Single Image Finding")
# A model's class name -> the concept its segments and findings carry; any other class is a Lesion.
CLASS_CONCEPTS = {"benign": BENIGN, "malignant": MALIGNANT, "mass": MASS, "calcification": CALCIFICATION}


def class_concept(name: str) -> Concept:
    return CLASS_CONCEPTS.get(name.lower(), LESION)


def finding_concept(name: str) -> Concept:
    """What a CAD mark of this class is (CID 6014): a calcification class marks a calcification cluster,
    any other lesion class (benign, malignant, mass) a mass: a segmented region is a mass-like finding."""
    return CALCIFICATION_CLUSTER if "calcification" in name.lower() else MASS


# --- measurements and units ------------------------------------------------------------------------
AREA = _std("SCT", "Area", "CID 7469 Generic Intensity and Size Measurements")
LONG_AXIS = _std("SCT", "LongAxis", "CID 6165 Breast Linear Measurement")
PROBABILITY_OF_CANCER = _std("DCM", "ProbabilityOfCancer", "CID 6048 CAD Operating Point Axis Label")
SQUARE_MM = _std("UCUM", "SquareMillimeter", "UCUM")
MM = _std("UCUM", "Millimeter", "UCUM")
PIXELS = _own("{pixels}", "UCUM", "pixels", "UCUM annotation: a length or area where the spacing is unknown")
NO_UNITS = _std("UCUM", "NoUnits", "UCUM")
PERCENT = _std("UCUM", "Percent", "UCUM")
MICROMETER = _std("UCUM", "Micrometer", "UCUM")

# --- documents, observers, algorithms --------------------------------------------------------------
MEASUREMENT_REPORT = _std("DCM", "ImagingMeasurementReport", "CID 7021 Measurement Report Document Title")
DEVICE = _std("DCM", "Device", "CID 270 Observer Type")
ARTIFICIAL_INTELLIGENCE = _std("DCM", "ArtificialIntelligence", "CID 7162 Surface Processing Algorithm Family")

# --- Mammography CAD SR (TID 4000 and its sub-templates) ---------------------------------------------
MAMMOGRAPHY_CAD_REPORT = _std("DCM", "MammographyCADReport", "CID 6000 (TID 4000 document title)")
IMAGE_LIBRARY = _std("DCM", "ImageLibrary", "TID 4020 CAD Image Library Entry")
FINDINGS_SUMMARY = _std("DCM", "CADProcessingAndFindingsSummary", "TID 4001 row 1, CID 6047")
SUMMARY_OF_DETECTIONS = _std("DCM", "SummaryOfDetections", "TID 4000 row 4")
SUMMARY_OF_ANALYSES = _std("DCM", "SummaryOfAnalyses", "TID 4000 row 6")
SUCCESSFUL_DETECTIONS = _std("DCM", "SuccessfulDetections", "TID 4015 row 1")
FAILED_DETECTIONS = _std("DCM", "FailedDetections", "TID 4015 row 3")
DETECTION_PERFORMED = _std("DCM", "DetectionPerformed", "TID 4017 row 1")
SINGLE_IMAGE_FINDING = _std("DCM", "SingleImageFinding", "TID 4006")
CENTER = _std("DCM", "Center", "TID 4021 row 1")
OUTLINE = _std("DCM", "Outline", "TID 4021 row 2")
CERTAINTY_OF_FINDING = _std("DCM", "CertaintyOfFinding", "TID 4006 row 3")
RENDERING_INTENT = _std("DCM", "RenderingIntent", "TID 4006 row 1")
PRESENTATION_REQUIRED = _std("DCM", "PresentationRequiredRenderingDeviceIsExpectedToPresent", "CID 6034")
PRESENTATION_OPTIONAL = _std("DCM", "PresentationOptionalRenderingDeviceMayPresent", "CID 6034")
NOT_ATTEMPTED = _std("DCM", "NotAttempted", "CID 6042 Status of Results")
IMPRESSION = _std("DCM", "Impression", "TID 4001 row 2")
SUMMARY_NONE_SUCCEEDED = _std("DCM", "NoAlgorithmsSucceededWithoutFindings", "CID 6047")
SUMMARY_WITH_FINDINGS = _std("DCM", "AllAlgorithmsSucceededWithFindings", "CID 6047")
SUMMARY_WITHOUT_FINDINGS = _std("DCM", "AllAlgorithmsSucceededWithoutFindings", "CID 6047")
SUMMARY_SOME_FAILED_WITH_FINDINGS = _std("DCM", "NotAllAlgorithmsSucceededWithFindings", "CID 6047")
SUMMARY_SOME_FAILED_WITHOUT_FINDINGS = _std("DCM", "NotAllAlgorithmsSucceededWithoutFindings", "CID 6047")

SUCCEEDED = _std("DCM", "Succeeded", "CID 6042 Status of Results")
PARTIALLY_SUCCEEDED = _std("DCM", "PartiallySucceeded", "CID 6042 Status of Results")
FAILED = _std("DCM", "Failed", "CID 6042 Status of Results")
# pydicom spells this meaning with a zero-width space after the slash (an artefact of its source):
# not a character an LO value of the default character set may hold.
INDIVIDUAL_IMPRESSION = _own("111034", "DCM", "Individual Impression/Recommendation", "TID 4003 row 1")
IMPRESSION_DESCRIPTION = _std("DCM", "ImpressionDescription", "TID 4002 row 5")
LANGUAGE_OF_CONTENT = _std("DCM", "LanguageOfContentItemAndDescendants", "TID 1204 row 1")
ENGLISH = _own("en-US", "RFC5646", "English, United States", "CID 5000 Language")
IMAGE_LATERALITY = _std("DCM", "ImageLaterality", "TID 4020 row 2")
IMAGE_VIEW = _std("DCM", "ImageView", "TID 4020 row 3")
PATIENT_ORIENTATION_ROW = _std("DCM", "PatientOrientationRow", "TID 4020 row 5")
PATIENT_ORIENTATION_COLUMN = _std("DCM", "PatientOrientationColumn", "TID 4020 row 6")
STUDY_DATE = _std("DCM", "StudyDate", "TID 4020 row 7")
STUDY_TIME = _std("DCM", "StudyTime", "TID 4020 row 8")
CONTENT_DATE = _std("DCM", "ContentDate", "TID 4020 row 9")
CONTENT_TIME = _std("DCM", "ContentTime", "TID 4020 row 10")
HORIZONTAL_PIXEL_SPACING = _std("DCM", "HorizontalPixelSpacing", "TID 4020 row 11")
VERTICAL_PIXEL_SPACING = _std("DCM", "VerticalPixelSpacing", "TID 4020 row 12")
PIXEL_DATA_ROWS = _std("DCM", "PixelDataRows", "TID 4020 (image dimensions)")
PIXEL_DATA_COLUMNS = _std("DCM", "PixelDataColumns", "TID 4020 (image dimensions)")
# The breast an image shows (CID 6022 Side), by ImageLaterality's value.
SIDE = {"L": _std("SCT", "LeftBreast", "CID 6022 Side"), "R": _std("SCT", "RightBreast", "CID 6022 Side")}
# CID 4014 View for Mammography, by the ViewPosition (0018,5101) value that names the view.
VIEWS = {"CC": _std("SCT", "CranioCaudal", "CID 4014"), "MLO": _std("SCT", "MedioLateralObliqueProjection", "CID 4014"),
         "ML": _std("SCT", "MedioLateralProjection", "CID 4014"), "LM": _std("SCT", "LateroMedial", "CID 4014"),
         "LMO": _std("SCT", "LateroMedialOblique", "CID 4014"), "FB": _std("SCT", "CaudoCranial", "CID 4014"),
         "XCCL": _std("SCT", "CranioCaudalExaggeratedLaterally", "CID 4014"),
         "XCCM": _std("SCT", "CranioCaudalExaggeratedMedially", "CID 4014"),
         "SIO": _std("SCT", "SuperolateralToInferomedialOblique", "CID 4014"),
         "ISO": _std("SCT", "InferomedialToSuperolateralOblique", "CID 4014")}
VIEW_CODES = {concept.value: concept for concept in VIEWS.values()}


# --- the algorithm, once ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Algorithm:
    """Who made a result: model name, version, and the checkpoint's SHA-256. Every DICOM object names
    it the same way (SEG's Algorithm Identification, the SR's device observer and TID 4019)."""

    name: str
    version: str
    checkpoint_sha256: str

    @classmethod
    def from_model(cls, meta: Any, model_path: str | Path) -> Algorithm:
        """From a model's sidecar (runtime.model.sidecar.ModelMeta): config name, model file and precision,
        the checkpoint's SHA-256 ("unknown" for a model exported without its checkpoint's hash)."""
        config = Path(str(meta.source.get("config") or Path(model_path).stem)).stem
        version = f"{Path(model_path).name} {meta.precision} bcdeploy {meta.versions.get('bcdeploy', '?')}"
        return cls(config, version, str(meta.source.get("checkpoint_sha256") or "unknown"))

    @property
    def short_name(self) -> str:
        return self.name[:64]  # LO

    @property
    def short_version(self) -> str:
        return self.version[:64]

    @property
    def uid(self) -> str:
        """A UID for the model, the same for every object made with the same checkpoint (2.25 + 128 bits)."""
        digest = hashlib.sha256(f"{self.name}|{self.checkpoint_sha256}".encode()).digest()[:16]
        return f"2.25.{int.from_bytes(digest, 'big')}"

    @property
    def parameters(self) -> str:
        return f"checkpoint_sha256={self.checkpoint_sha256}"


# --- our result series, once -------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesConvention:
    """Each kind of result is a new series in the source's study: its number and description."""

    number: int
    label: str

    def description(self, algorithm: Algorithm) -> str:
        return " ".join(filter(None, ("bcdeploy", self.label, algorithm.name)))[:64]


SERIES = {"seg": SeriesConvention(900, ""), "sr": SeriesConvention(901, "findings"),
          "sc": SeriesConvention(902, "overlay"), "cad": SeriesConvention(903, "CAD")}


def file_bytes(dataset: Any) -> bytes:
    """A dataset as a DICOM Part 10 file's bytes (the run's writer stores them atomically)."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
