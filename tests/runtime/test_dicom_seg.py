"""DICOM SEG output: bound to its source by UID, one binary segment per lesion class, pixels = mask."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from bcdeploy.errors import InputError
from bcdeploy.runtime.results.dicom.codes import Algorithm
from bcdeploy.runtime.results.dicom.seg import seg_masks, write_seg
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax

CLASSES = ["background", "benign", "malignant"]
ALGO = Algorithm("unet-tiny_deeplabv3", "0.1.0", "ab" * 32)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A JPEG-LS compressed mammogram, as a PACS would send it."""
    ds = mammogram_dataset(mammogram_pixels((512, 384), seed=5))
    path = write_syntax(ds, "jpegls", tmp_path_factory.mktemp("src") / "mg.dcm")
    return pydicom.dcmread(path)


def _mask(shape=(512, 384)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[40:90, 30:110] = 1
    mask[300:340, 200:260] = 2
    mask[200:203, 5:9] = 1  # a second small benign lesion
    return mask


def test_seg_references_source_and_pixels_equal_mask(source, tmp_path):
    mask = _mask()
    path = write_seg(tmp_path / "out" / "mg.seg.dcm", source, mask, CLASSES, algorithm=ALGO)
    assert [p.name for p in path.parent.iterdir()] == ["mg.seg.dcm"]  # atomic: no partial file left
    seg = pydicom.dcmread(path)
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.SegmentationType == "BINARY"
    assert seg.PatientID == source.PatientID and seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    ref = seg.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == source.SeriesInstanceUID
    assert ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    assert labels == ["benign", "malignant"]
    assert [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in seg.SegmentSequence] == ["3898006", "86049000"]
    algo = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert (algo.AlgorithmName, algo.AlgorithmVersion) == (ALGO.name, ALGO.version)
    assert ALGO.checkpoint_sha256 in algo.AlgorithmParameters
    # pydicom alone: one frame per segment, in segment order
    frames = seg.pixel_array
    for number in (1, 2):
        assert np.array_equal(frames[number - 1].astype(bool), mask == number)
    # highdicom
    masks = seg_masks(seg)
    assert np.array_equal(masks["benign"], mask == 1) and np.array_equal(masks["malignant"], mask == 2)


def test_only_present_classes_become_segments(source, tmp_path):
    mask = np.where(_mask() == 2, 2, 0).astype(np.uint8)
    seg = pydicom.dcmread(write_seg(tmp_path / "m.dcm", source, mask, CLASSES, algorithm=ALGO))
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["malignant"]
    assert np.array_equal(seg.pixel_array.astype(bool), mask == 2)


def test_no_lesion_still_gives_a_seg_with_empty_segments(source, tmp_path):
    seg = pydicom.dcmread(write_seg(tmp_path / "e.dcm", source, np.zeros((512, 384), np.uint8), CLASSES,
                                    algorithm=ALGO))
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["benign", "malignant"]
    assert not seg.pixel_array.any()


def test_mask_of_another_size_is_refused(source, tmp_path):
    with pytest.raises(InputError, match="mask is 300x200, the source image is 384x512"):
        write_seg(tmp_path / "x.dcm", source, np.zeros((200, 300), np.uint8), CLASSES, algorithm=ALGO)
    assert not (tmp_path / "x.dcm").exists()


def test_dciodvfy_finds_no_error(source, tmp_path, capsys):
    """The SEG, and the generated source it refers to (so the generator's MG objects are real ones)."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools)")
    seg = write_seg(tmp_path / "v.dcm", source, _mask(), CLASSES, algorithm=ALGO)
    plain = write_syntax(mammogram_dataset(mammogram_pixels((128, 96))), "explicit", tmp_path / "mg.dcm")
    for path, iod in ((seg, "Segmentation"), (plain, "MammographyImageForPresentation")):
        out = subprocess.run([tool, str(path)], capture_output=True, text=True)
        report = (out.stdout + out.stderr).strip()
        with capsys.disabled():
            print(f"\ndciodvfy {path.name}: {report!r}")
        assert report.startswith(iod) and "Error" not in report, report
