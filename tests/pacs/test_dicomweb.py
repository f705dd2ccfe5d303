"""Round trip against a real Orthanc: mammograms in several transfer syntaxes in, DICOM SEGs back."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pydicom
import pytest

from bcdeploy.errors import PacsError
from bcdeploy.pacs.dicomweb import DicomWebPacs
from bcdeploy.runtime.results.dicom.codes import Algorithm
from bcdeploy.runtime.results.dicom.seg import seg_masks, write_seg
from bcdeploy.runtime.images.imageio import decode_image
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax

SYNTAX_PER_IMAGE = ("jpeg_lossless_sv1", "jpegls", "j2k_lossless", "rle", "explicit", "deflated")
ALGO = Algorithm("test-model", "0", "cd" * 32)


def _upload(orthanc, path: Path) -> None:
    """Through Orthanc's own REST API, so fetching is tested independently of storing."""
    request = urllib.request.Request(f"{orthanc.url}/instances", data=path.read_bytes(), method="POST",
                                     headers={"Content-Type": "application/dicom"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def _make_studies(folder: Path, first_patient: int) -> dict[str, list[Path]]:
    """Three studies, two views each, each image in another transfer syntax (encoders permitting)."""
    studies: dict[str, list[Path]] = {}
    syntaxes = iter(SYNTAX_PER_IMAGE * 2)
    for p in range(first_patient, first_patient + 3):
        study = None
        for view in ("CC", "MLO"):
            ds = mammogram_dataset(mammogram_pixels((384, 288), seed=p * 7 + len(view)), patient_id=f"P{p}",
                                   study_uid=study, view=view, seed=p)
            study = ds.StudyInstanceUID
            path = None
            while path is None:  # skip syntaxes whose encoder is missing here
                name = next(syntaxes)
                path = write_syntax(ds, name, folder / f"P{p}-{view}-{name}.dcm")
            studies.setdefault(study, []).append(path)
    return studies


def _round_trip(orthanc, tmp_path: Path, first_patient: int, segment, classes: list[str],
                algorithm: Algorithm = ALGO) -> None:
    studies = _make_studies(tmp_path / "in", first_patient)
    for paths in studies.values():
        for path in paths:
            _upload(orthanc, path)
    pacs = DicomWebPacs(orthanc.dicomweb)
    assert set(studies) <= set(pacs.studies())
    local_masks = {}
    for study, paths in studies.items():
        local = {pydicom.dcmread(p).SOPInstanceUID: p for p in paths}
        refs = pacs.instances(study)
        assert {r.sop_uid for r in refs} == set(local)
        segs = []
        for ref in refs:
            data = pacs.fetch(ref)
            original = pydicom.dcmread(local[ref.sop_uid])
            fetched = pydicom.dcmread(__import__("io").BytesIO(data))
            assert fetched.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID  # not transcoded
            image = decode_image(data, ref.path())
            assert np.array_equal(image.bgr, decode_image(local[ref.sop_uid].read_bytes()).bgr)
            mask = segment(image.bgr)
            local_masks[ref.sop_uid] = mask
            path = write_seg(tmp_path / "out" / f"{ref.sop_uid}.seg.dcm", fetched, mask, classes, algorithm=algorithm)
            segs.append(pydicom.dcmread(path))
        assert pacs.store(segs) == [s.SOPInstanceUID for s in segs]
    for study, paths in studies.items():
        seg_refs = pacs.instances(study, modality="SEG")
        assert len(seg_refs) == len(paths)
        for ref in seg_refs:
            stored = pacs.fetch_dataset(ref)
            identification = stored.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
            assert identification.AlgorithmName == algorithm.name
            assert algorithm.checkpoint_sha256 in identification.AlgorithmParameters
            source_uid = stored.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
            mask = local_masks[source_uid]
            for label, pixels in seg_masks(stored).items():
                assert np.array_equal(pixels, mask == classes.index(label)), (study, label)


def test_round_trip_with_threshold_segmenter(orthanc, tmp_path):
    """Dense blobs as 'malignant', the tissue edge band as 'benign': masks with both classes, no model."""
    def segment(bgr: np.ndarray) -> np.ndarray:
        gray = bgr[..., 0]
        return np.where(gray > 200, 2, np.where((gray > 60) & (gray < 70), 1, 0)).astype(np.uint8)

    _round_trip(orthanc, tmp_path, 1, segment, ["background", "benign", "malignant"])


@pytest.mark.mmseg
def test_round_trip_with_exported_model(orthanc, exported, tmp_path):
    from bcdeploy.runtime.model.segmenter import Segmenter

    with Segmenter(exported / "model.onnx") as segmenter:
        classes = list(segmenter.meta.classes)
        algorithm = Algorithm.from_model(segmenter.meta, exported / "model.onnx")
        assert len(algorithm.checkpoint_sha256) == 64 and algorithm.name.startswith("unet-tiny")
        _round_trip(orthanc, tmp_path, 11, lambda bgr: segmenter.predict([bgr])[0].mask, classes, algorithm)


def test_unreachable_server_is_one_line(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PacsError, match=rf"127\.0\.0\.1:{port}/dicom-web: cannot search studies.*server running"):
        DicomWebPacs(f"http://127.0.0.1:{port}/dicom-web", timeout=5).studies()


def test_unknown_study_is_empty_not_an_error(orthanc):
    assert DicomWebPacs(orthanc.dicomweb).instances("1.2.3.4.5.6.7.8.9") == []


def test_dicom_list_is_the_dry_run(orthanc, tmp_path):
    """`bcdeploy dicom list --dicomweb URL [--study UID]`: what infer --dicomweb would fetch, nothing fetched."""
    import json

    from click.testing import CliRunner

    from bcdeploy.cli import cli

    studies = _make_studies(tmp_path, 21)
    for paths in studies.values():
        for path in paths:
            _upload(orthanc, path)
    study, paths = next(iter(studies.items()))
    result = CliRunner().invoke(cli, ["dicom", "list", "--dicomweb", orthanc.dicomweb, "--study", study, "--json"])
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["sop_uid"] for r in listed} == {pydicom.dcmread(p).SOPInstanceUID for p in paths}
    assert all(r["study_uid"] == study and r["modality"] == "MG" for r in listed)
    everything = CliRunner().invoke(cli, ["dicom", "list", "--dicomweb", orthanc.dicomweb])
    assert set(studies) <= {line.split()[0] for line in everything.stdout.splitlines()}
    down = CliRunner().invoke(cli, ["dicom", "list", "--dicomweb", "http://127.0.0.1:9/dicom-web"])
    assert down.exit_code == 1 and down.stderr.startswith("error: http://127.0.0.1:9/dicom-web: cannot")
