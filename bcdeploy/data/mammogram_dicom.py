"""Mammograms as DICOM objects: what a modality writes, built from pixels.

Real DMID images are TIFFs, and no DICOM mammogram can be downloaded where bcdeploy is built; the
clinical outputs (SEG, SR, SC), the PACS round trip and the DICOM node need DICOM sources. This builds
valid Digital Mammography X-Ray Image objects (dciodvfy finds no error in them): UIDs derived from
the given identity (the same inputs give the same UIDs), laterality, view and its code, a nominal
Imager Pixel Spacing, a window, the MG and DX module attributes. `bcdeploy data dicom` wraps images
with it; the tests build their sources with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
NOMINAL_SPACING_MM = 0.07  # a common detector pitch; generated data say so in their Series Description


def mammogram_dataset(pixels: np.ndarray, *, bits_stored: int = 12, patient_id: str = "P001",
                      study_uid: str | None = None, laterality: str = "L", view: str = "CC",
                      sop_class: str = MG_FOR_PRESENTATION, frames: int = 1, seed: int = 0):
    """An uncompressed MG dataset with what a modality writes (UIDs, laterality, view, spacing, window)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    def uid(what: str) -> str:
        return generate_uid(entropy_srcs=[patient_id, str(study_uid), laterality, view, what, str(seed)])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid("sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("mg.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = f"Test^{patient_id}", patient_id, "19700101", "F"
    ds.StudyInstanceUID = study_uid or uid("study")
    ds.SeriesInstanceUID, ds.FrameOfReferenceUID = uid("series"), uid("for")
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", "A1"
    ds.ReferringPhysicianName, ds.SeriesNumber, ds.InstanceNumber = "", 1, 1
    ds.Modality, ds.Manufacturer = "MG", "bcdeploy-tests"
    ds.ImageLaterality, ds.ViewPosition = laterality, view
    ds.PatientOrientation = ["A", "R"] if laterality == "L" else ["P", "L"]
    ds.PresentationIntentType = "FOR PROCESSING" if sop_class == MG_FOR_PROCESSING else "FOR PRESENTATION"
    ds.ImagerPixelSpacing = [NOMINAL_SPACING_MM, NOMINAL_SPACING_MM]
    _mammography_modules(ds)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = 8 if bits_stored <= 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "US"
    ds.WindowCenter, ds.WindowWidth = (1 << (bits_stored - 1)), (1 << bits_stored)
    if frames > 1:
        ds.NumberOfFrames = frames
        pixels = np.stack([pixels] * frames)
    ds.PixelData = pixels.astype(np.uint8 if bits_stored <= 8 else np.uint16).tobytes()
    return ds


def _mammography_modules(ds) -> None:
    """The DX/MG attributes dciodvfy asks for, so the generated sources are valid MG objects."""
    from pydicom.dataset import Dataset

    breast = Dataset()
    breast.CodeValue, breast.CodingSchemeDesignator, breast.CodeMeaning = "76752008", "SCT", "Breast"
    ds.AnatomicRegionSequence = [breast]
    ds.PositionReferenceIndicator, ds.BodyPartExamined = "", "BREAST"
    view = Dataset()
    view.CodeValue, view.CodingSchemeDesignator = {"CC": "399162004", "MLO": "399368009"}[ds.ViewPosition], "SCT"
    view.CodeMeaning = {"CC": "cranio-caudal", "MLO": "medio-lateral oblique"}[ds.ViewPosition]
    view.ViewModifierCodeSequence = []
    ds.ViewCodeSequence, ds.AcquisitionContextSequence = [view], []
    ds.PositionerType, ds.OrganExposed = "MAMMOGRAPHIC", "BREAST"
    ds.PixelIntensityRelationship, ds.PixelIntensityRelationshipSign = "LOG", 1
    ds.PresentationLUTShape, ds.LossyImageCompression, ds.BurnedInAnnotation = "IDENTITY", "00", "NO"
    ds.DetectorType, ds.ContentDate, ds.ContentTime = "DIRECT", "20260101", "120000"


def write_mammogram(path: str | Path, ds: Any) -> Path:
    """Write `ds` as a DICOM file (explicit VR little endian, with its file meta), atomically."""
    import io

    from bcdeploy.fileio import write_bytes

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    write_bytes(path, buffer.getvalue())
    return Path(path)


def dmid_view(code: str | None) -> tuple[str, str]:
    """DMID's view codes (`CCLT`, `MLORT`, ...) -> (ImageLaterality, ViewPosition); (U, CC) when unknown."""
    code = (code or "").upper()
    laterality = "L" if code.endswith("LT") else "R" if code.endswith("RT") else "U"
    return laterality, "MLO" if code.startswith("MLO") else "CC"


def wrap_images(images: list[Path], out: Path, *, views: dict[str, str] | None = None) -> list[Path]:
    """Each image (any format the runtime reads) as `<out>/<stem>.dcm`: an 8-bit MG for presentation of
    its own patient and study, laterality and view from `views` (image stem -> DMID view code)."""
    from bcdeploy.runtime.images.imageio import read_image

    written = []
    for index, image_path in enumerate(images):
        image = read_image(image_path)
        laterality, view = dmid_view((views or {}).get(image_path.stem))
        ds = mammogram_dataset(image.bgr[..., 0], bits_stored=8, patient_id=f"SYN-{image_path.stem}"[:64],
                               laterality=laterality, view=view, seed=index)
        ds.SeriesDescription = f"generated from {image_path.name}; nominal spacing {NOMINAL_SPACING_MM} mm"[:64]
        written.append(write_mammogram(out / f"{image_path.stem}.dcm", ds))
    return written
