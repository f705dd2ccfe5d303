"""DICOM through `bcdeploy infer` (issue 13): tags in results.json, --no-phi, sizes in mm, --frame,
--dicom-seg read back and validated. A tiny ONNX model built in code (no torch), real DICOM files in
several transfer syntaxes, the real CLI in-process."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax

PATIENT = "PHIPATIENT42"
SPACING = 0.07  # tests/dicom_samples.py writes ImagerPixelSpacing 0.07 x 0.07
IDENTIFYING = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


@pytest.fixture(scope="module")
def model(tiny_onnx) -> Path:
    return tiny_onnx


@pytest.fixture()
def inputs(tmp_path) -> dict[str, Path]:
    """Two DICOM views of one patient (explicit VR, RLE) below a folder named by the patient ID, and a PNG."""
    root = tmp_path / "in"
    files, study = {}, None
    for view, syntax in (("CC", "explicit"), ("MLO", "rle")):
        ds = mammogram_dataset(mammogram_pixels((256, 192), seed=len(view)), patient_id=PATIENT, study_uid=study,
                               view=view, seed=3)
        study = ds.StudyInstanceUID
        files[f"{PATIENT}/{view}"] = write_syntax(ds, syntax, root / PATIENT / f"{view}.dcm")
    gray = (mammogram_pixels((200, 160), seed=9) >> 4).astype(np.uint8)
    cv2.imwrite(str(root / "plain.png"), gray)
    files["plain"] = root / "plain.png"
    return files


def infer(model: Path, *args) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["infer", "--model", str(model), *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def by_name(out: Path) -> dict[str, dict]:
    return {e["name"]: e for e in json.loads((out / "results.json").read_text())["images"]}


def lesion_rows(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((out / "lesions.csv").read_text())))


def identifiers(paths) -> set[str]:
    found = set()
    for path in paths:
        ds = pydicom.dcmread(path)
        found |= {str(ds.get(k)) for k in IDENTIFYING if ds.get(k)}
    return found


def test_results_carry_laterality_view_uids_and_lesion_sizes_in_mm(model, inputs, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = infer(model, "-r", tmp_path / "in", "--out", out)
    assert code == 0, stdout + stderr
    images = by_name(out)
    for name in (f"{PATIENT}/CC", f"{PATIENT}/MLO"):
        ds = pydicom.dcmread(inputs[name])
        tags = images[name]["tags"]
        assert (tags["laterality"], tags["view_position"]) == (ds.ImageLaterality, ds.ViewPosition)
        assert tags["patient_id"] == PATIENT
        assert (tags["study_instance_uid"], tags["series_instance_uid"], tags["sop_instance_uid"]) == (
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert "tags" not in images["plain"]
    rows = lesion_rows(out)
    dicom_rows = [r for r in rows if r["image"].startswith(PATIENT)]
    assert dicom_rows and any(r["image"] == "plain" for r in rows), "the tiny model must find lesions in both kinds"
    for row in rows:
        if row["image"] == "plain":  # no spacing: no invented size
            assert row["area_mm2"] == "" and row["bbox_mm"] == ""
            continue
        assert float(row["area_mm2"]) == pytest.approx(int(row["area_px"]) * SPACING * SPACING, abs=1e-3)
        x, y, w, h = map(float, row["bbox_mm"].split())
        px = [int(row[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")]
        assert [x, y, w, h] == pytest.approx([v * SPACING for v in px], abs=1e-3)


def test_no_phi_keeps_every_identifier_out_of_every_report(model, inputs, tmp_path):
    out = tmp_path / "out"
    dicoms = [p for p in inputs.values() if p.suffix == ".dcm"]
    secret = identifiers(dicoms)
    assert PATIENT in secret
    code, stdout, stderr = infer(model, "-r", tmp_path / "in", "--out", out, "--no-phi")
    assert code == 0, stdout + stderr
    reports = [p for p in out.rglob("*") if p.suffix in (".json", ".csv")]
    assert {p.name for p in reports} >= {"results.json", "lesions.csv"}
    for report in reports:
        text = report.read_text()
        leaked = [s for s in secret if s in text]
        assert not leaked, f"{report.name} holds {leaked}"
    entry = next(e for e in by_name(out).values() if e.get("tags"))
    assert entry["tags"]["laterality"] == "L" and entry["tags"]["view_position"] in ("CC", "MLO")
    # The ledger keeps the binding (phi.py): it holds the SOP instance UIDs the reports leave out.
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db:
        ledger_text = " ".join(r[0] for r in db.execute("SELECT image FROM images WHERE image IS NOT NULL"))
    assert all(pydicom.dcmread(p).SOPInstanceUID in ledger_text for p in dicoms)
    # Without --no-phi, the same folder's reports show them again (a report option, not a mask option).
    assert infer(model, "-r", tmp_path / "in", "--out", out)[0] == 0
    assert PATIENT in (out / "results.json").read_text()


def test_multi_frame_needs_a_frame_and_the_frame_is_part_of_the_identity(model, tmp_path):
    pixels = mammogram_pixels((128, 96), seed=4)
    ds = mammogram_dataset(pixels, frames=3)
    path = write_syntax(ds, "explicit", tmp_path / "in" / "dbt.dcm")
    out = tmp_path / "out"
    code, stdout, stderr = infer(model, path, "--out", out)
    assert code == 1 and "multi-frame DICOM (3 frames" in stderr and "failed 1" in stdout
    code, stdout, stderr = infer(model, path, "--out", out, "--frame", "1")
    assert code == 0 and "processed 1" in stdout, stdout + stderr
    assert by_name(out)["dbt"]["tags"]["frame"] == 1
    assert "skipped 1" in infer(model, path, "--out", out, "--frame", "1")[1]
    assert "processed 1" in infer(model, path, "--out", out, "--frame", "2")[1]  # another frame: recomputed
    code, _, stderr = infer(model, path, "--out", out, "--frame", "3")
    assert code == 1 and "frame 3 asked for, the file has 3 frame(s)" in stderr


def test_dicom_seg_per_dicom_input_equals_the_png_mask_and_validates(model, inputs, tmp_path):
    from bcdeploy.runtime.results.dicom.seg import seg_masks

    pytest.importorskip("highdicom")
    out = tmp_path / "out"
    code, stdout, stderr = infer(model, "-r", tmp_path / "in", "--out", out, "--dicom-seg")
    assert code == 0, stdout + stderr
    images = by_name(out)
    assert "seg" not in images["plain"]["outputs"] and not (out / "seg" / "plain.dcm").exists()
    for name in (f"{PATIENT}/CC", f"{PATIENT}/MLO"):
        record = images[name]["outputs"]["seg"]
        assert record["path"] == f"seg/{name}.dcm"
        seg = pydicom.dcmread(out / record["path"])
        source = pydicom.dcmread(inputs[name])
        assert seg.Modality == "SEG" and seg.StudyInstanceUID == source.StudyInstanceUID
        assert seg.SeriesInstanceUID != source.SeriesInstanceUID
        referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
        assert referenced == source.SOPInstanceUID
        algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == "model" and "a" * 64 in algorithm.AlgorithmParameters
        assert "model.onnx" in algorithm.AlgorithmVersion
        mask = cv2.imread(str(out / images[name]["outputs"]["mask"]["path"]), cv2.IMREAD_UNCHANGED)
        classes = json.loads((out / "results.json").read_text())["classes"]
        segments = seg_masks(seg)
        assert segments, "a SEG with no segment"
        for label, pixels in segments.items():
            assert np.array_equal(pixels, mask == classes.index(label)), (name, label)
        _validate(out / record["path"])
    # Resume: all skipped; a lost SEG makes its image recomputed, and only that one.
    assert "skipped 3" in infer(model, "-r", tmp_path / "in", "--out", out, "--dicom-seg")[1]
    (out / "seg" / PATIENT / "CC.dcm").unlink()
    code, stdout, _ = infer(model, "-r", tmp_path / "in", "--out", out, "--dicom-seg")
    assert code == 0 and "processed 1, skipped 2" in stdout and (out / "seg" / PATIENT / "CC.dcm").is_file()


def _validate(path: Path) -> None:
    """dicom3tools' dciodvfy, when installed (Debian: dicom3tools): no error lines."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        return
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
    assert not errors, "\n".join(errors)


def test_inputs_or_dicomweb_exactly_one(model, inputs, tmp_path):
    for args, message in (([], "missing INPUTS"), ([tmp_path / "in", "--dicomweb", "http://127.0.0.1:9/dicom-web"],
                                                    "either INPUTS or --dicomweb"),
                          ([tmp_path / "in", "--dry-run"], "go with --dicomweb")):
        code, _, stderr = infer(model, *args, "--out", tmp_path / "out")
        assert code == 2 and message in stderr, stderr
    assert not (tmp_path / "out").exists()


def test_seg_algorithm_of_a_predictor_without_sidecar_names_its_checkpoint(model):
    """`predict --dicom-seg` (PyTorch): no sidecar, so the config's name and the checkpoint's hash."""
    from bcdeploy.runtime.run.driver import seg_algorithm
    from bcdeploy.runtime.model.segmenter import Segmenter

    class Checkpoint:  # what TorchPredictor.describe() gives
        def describe(self) -> dict:
            return {"backend": "pytorch", "config": "configs/unet-s5.py", "model": "work/iter_30.pth",
                    "sha256": "c" * 64}

    algorithm = seg_algorithm(Checkpoint())
    assert (algorithm.name, algorithm.checkpoint_sha256) == ("unet-s5", "c" * 64)
    assert algorithm.version == "iter_30.pth pytorch"
    with Segmenter(model) as segmenter:  # an exported model: its sidecar's checkpoint hash, not the file's
        assert seg_algorithm(segmenter).checkpoint_sha256 == "a" * 64
