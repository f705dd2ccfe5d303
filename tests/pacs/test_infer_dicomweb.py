"""`bcdeploy infer --dicomweb URL` against a real Orthanc (tests/pacs/conftest.py): the studies'
mammograms in several transfer syntaxes pulled through the run loop, a SEG per image stored back,
a re-run skipping what is unchanged, --dry-run fetching nothing, --no-phi naming outputs by hashes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from bcdeploy.pacs.dicomweb import DicomWebPacs
from tests.orthanc_server import OrthancProcess
from tests.pacs.test_dicomweb import _make_studies, _upload


@pytest.fixture(scope="module")
def model(tiny_onnx) -> Path:
    return tiny_onnx


def _uploaded(orthanc, folder: Path, first_patient: int) -> dict[str, list[Path]]:
    studies = _make_studies(folder, first_patient)
    for paths in studies.values():
        for path in paths:
            _upload(orthanc, path)
    return studies


def infer(model: Path, url: str, studies, *args) -> tuple[int, str, str]:
    study_args = [a for uid in studies for a in ("--study", uid)]
    result = CliRunner().invoke(cli, ["infer", "--model", str(model), "--dicomweb", url, *study_args, *map(str, args)],
                                catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_infer_dicomweb_stores_a_seg_per_mammogram_equal_to_the_local_mask(orthanc, model, tmp_path):
    from bcdeploy.runtime.results.dicom.seg import seg_masks

    studies = _uploaded(orthanc, tmp_path / "in", 31)
    count = sum(map(len, studies.values()))
    out = tmp_path / "out"
    code, stdout, stderr = infer(model, orthanc.dicomweb, studies, "--out", out)
    assert code == 0 and f"processed {count}, skipped 0" in stdout, stdout + stderr
    results = json.loads((out / "results.json").read_text())
    classes, images = results["classes"], {e["tags"]["sop_instance_uid"]: e for e in results["images"]}
    pacs = DicomWebPacs(orthanc.dicomweb)
    for study, paths in studies.items():
        sources = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in paths}
        segs = pacs.instances(study, modality="SEG")
        assert len(segs) == len(paths)
        for ref in segs:
            stored = pacs.fetch_dataset(ref)
            source_uid = stored.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
            entry = images[source_uid]
            source = sources[source_uid]
            assert entry["name"] == f"{study}/{source.SeriesInstanceUID}/{source_uid}"
            assert entry["outputs"]["seg"]["path"] == f"seg/{entry['name']}.dcm"
            assert stored.SOPInstanceUID == pydicom.dcmread(out / entry["outputs"]["seg"]["path"]).SOPInstanceUID
            mask = cv2.imread(str(out / entry["outputs"]["mask"]["path"]), cv2.IMREAD_UNCHANGED)
            for label, pixels in seg_masks(stored).items():
                assert np.array_equal(pixels, mask == classes.index(label)), (source_uid, label)
    # A second run fetches again, finds the same bytes and outputs: nothing recomputed, nothing stored twice.
    code, stdout, stderr = infer(model, orthanc.dicomweb, studies, "--out", out)
    assert code == 0 and f"processed 0, skipped {count}" in stdout, stdout + stderr
    assert all(len(pacs.instances(s, modality="SEG")) == len(p) for s, p in studies.items())


def test_dry_run_lists_and_fetches_nothing(orthanc, model, tmp_path):
    studies = _uploaded(orthanc, tmp_path / "in", 41)
    study, paths = next(iter(studies.items()))
    out = tmp_path / "out"
    code, stdout, stderr = infer(model, orthanc.dicomweb, [study], "--out", out, "--dry-run")
    assert code == 0, stdout + stderr
    assert {line.split()[2] for line in stdout.splitlines()} == {pydicom.dcmread(p).SOPInstanceUID for p in paths}
    assert not out.exists()
    assert DicomWebPacs(orthanc.dicomweb).instances(study, modality="SEG") == []


def test_no_phi_names_outputs_by_hashes_and_reports_hold_no_uid(orthanc, model, tmp_path):
    studies = _uploaded(orthanc, tmp_path / "in", 51)
    secret = set()
    for paths in studies.values():
        for path in paths:
            ds = pydicom.dcmread(path)
            secret |= {ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
    out = tmp_path / "out"
    code, stdout, stderr = infer(model, orthanc.dicomweb, [*studies, "1.2.3.999.404"], "--out", out, "--no-phi")
    assert code == 1 and "holds no mammogram" in stderr, stdout + stderr  # the unknown study is a failure line
    for report in (out / "results.json", out / "lesions.csv"):
        text = report.read_text()
        assert not [s for s in secret | {"1.2.3.999.404"} if s in text], report.name
    names = [p.relative_to(out / "masks").as_posix() for p in (out / "masks").rglob("*.png")]
    assert len(names) == sum(map(len, studies.values()))
    assert not [n for n in names if any(s in n for s in secret)]


def test_unreachable_server_is_one_line(model, tmp_path):
    code, stdout, stderr = infer(model, "http://127.0.0.1:9/dicom-web", [], "--out", tmp_path / "out")
    assert code == 1 and stderr.startswith("error: http://127.0.0.1:9/dicom-web: cannot"), stdout + stderr


def test_with_the_results_pacs_down_every_image_finishes_and_the_same_command_sends_them_later(
        orthanc, model, tmp_path):
    """One outbox (runtime/run/outbox.py): the run queues the SEGs with the images' rows and sends them
    after. With the results PACS down (a real Orthanc, stopped) every image is segmented, the exit status
    and one line say what is unsent; once it is up, the same command segments nothing and sends each SEG,
    once. Fails on 2e82023, where a store that failed failed its image and forced a re-segmentation."""
    studies = _uploaded(orthanc, tmp_path / "in", 61)
    count = sum(map(len, studies.values()))
    (tmp_path / "results-pacs").mkdir()
    results_pacs = OrthancProcess(tmp_path / "results-pacs", dicomweb=True)  # ports chosen, not started: down
    command = ("--out", tmp_path / "out", "--stow", f"{results_pacs.url}/dicom-web")

    code, stdout, stderr = infer(model, orthanc.dicomweb, studies, *command)
    assert code == 1, stdout + stderr
    assert f"processed {count}, skipped 0 (done earlier), failed 0" in stdout, stdout
    assert f"sent 0 DICOM result(s) to {results_pacs.url}/dicom-web" in stdout
    assert f"{count} result(s) not sent to {results_pacs.url}/dicom-web" in stderr, stderr
    assert "run the same command again" in stderr and stderr.count("failed:") == 1, stderr

    results_pacs.start()
    try:
        code, stdout, stderr = infer(model, orthanc.dicomweb, studies, *command)
        assert code == 0, stdout + stderr
        assert f"processed 0, skipped {count} (done earlier), failed 0" in stdout, stdout
        assert f"sent {count} DICOM result(s)" in stdout
        segs = results_pacs.instances_by_modality().get("SEG", [])
        assert len(segs) == count, segs
        code, stdout, _ = infer(model, orthanc.dicomweb, studies, *command)  # nothing due: nothing sent twice
        assert code == 0 and "sent 0 DICOM result(s)" in stdout, stdout
        assert len(results_pacs.instances_by_modality().get("SEG", [])) == count
    finally:
        results_pacs.stop()
    assert all(DicomWebPacs(orthanc.dicomweb).instances(s, modality="SEG") == [] for s in studies)


def test_every_dicom_kind_reaches_the_pacs_and_the_sr_reads_back_as_lesions_csv(orthanc, model, tmp_path):
    """SEG, SR and SC of every mammogram stored with STOW-RS; the SR fetched back from Orthanc and read
    with highdicom holds the lesions.csv measurements of its image."""
    import csv
    import io

    hd = pytest.importorskip("highdicom")
    studies = _uploaded(orthanc, tmp_path / "in", 71)
    count = sum(map(len, studies.values()))
    out = tmp_path / "out"
    code, stdout, stderr = infer(model, orthanc.dicomweb, studies, "--out", out, "--save", "masks,seg,sr,sc")
    assert code == 0 and f"processed {count}, skipped 0" in stdout, stdout + stderr
    lesions = list(csv.DictReader(io.StringIO((out / "lesions.csv").read_text())))
    pacs = DicomWebPacs(orthanc.dicomweb)
    checked = 0
    for study, paths in studies.items():
        for modality in ("SEG", "SR", "OT"):  # OT: a Secondary Capture's modality
            assert len(pacs.instances(study, modality=modality)) == len(paths), (study, modality)
        for ref in pacs.instances(study, modality="SR"):
            stored = pacs.fetch_dataset(ref)
            sr = hd.sr.Comprehensive3DSR.from_dataset(stored)
            source_uid = stored.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0] \
                .ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            mine = [row for row in lesions if row["image"].endswith(source_uid)]
            groups = sr.content.get_planar_roi_measurement_groups()
            assert len(groups) == len(mine), source_uid
            for group, row in zip(groups, mine):
                values = {m.name.meaning: m.value for m in group.get_measurements()}
                assert values["Area"] == pytest.approx(float(row["area_mm2"]))
                assert values["Long axis"] == pytest.approx(float(row["longest_diameter_mm"]))
                assert values["Probability of cancer"] == pytest.approx(float(row["score"]))
                checked += 1
    assert checked > 0, "the tiny model must find lesions for the comparison to mean something"
