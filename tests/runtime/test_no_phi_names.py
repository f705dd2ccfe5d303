"""`--no-phi` reports name images by their DICOM identity, never by their path (issue "Reliability
round 3", defect 1). Archives are laid out as `<PatientName>/<Accession>_L_CC.dcm`: a report that shows
a path, an output path or a name derived from one leaks the patient's name and accession number, and a
patient whose images all failed has no tags to scrub by. Identifiers are replaced as whole values only.
Real runs of `bcdeploy infer` with a tiny real ONNX model."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax

pytest.importorskip("onnxruntime")

NAME, ACCESSION, FAILED_NAME, FAILED_ACCESSION = "DOE^JANE", "ACC77121", "ROE^RITA", "ACC90031"


def folder_of(name: str) -> str:
    return name.replace("^", "_")  # how archives spell a person name in a folder


@pytest.fixture()
def archive(tmp_path) -> dict[str, Path]:
    """Two readable views of one patient, one patient whose only image is truncated, and a PNG whose
    name contains the other patient's ID as a plain word."""
    root = tmp_path / "archive"
    files = {}
    for view in ("CC", "MLO"):
        ds = mammogram_dataset(mammogram_pixels((192, 160), seed=len(view)), patient_id="png", view=view, seed=5)
        ds.PatientName, ds.AccessionNumber = NAME, ACCESSION
        files[view] = write_syntax(ds, "explicit", root / folder_of(NAME) / f"{ACCESSION}_L_{view}.dcm")
    ds = mammogram_dataset(mammogram_pixels((192, 160), seed=9), patient_id="PID-ROE-3", view="MLO", seed=6)
    ds.PatientName, ds.AccessionNumber = FAILED_NAME, FAILED_ACCESSION
    broken = write_syntax(ds, "explicit", root / folder_of(FAILED_NAME) / f"{FAILED_ACCESSION}_R_MLO.dcm")
    broken.write_bytes(broken.read_bytes()[:-5000])  # truncated pixel data: this patient's only image fails
    files["broken"] = broken
    cv2.imwrite(str(root / "x.png"), (mammogram_pixels((160, 128), seed=2) >> 4).astype(np.uint8))
    files["png"] = root / "x.png"
    return files


def infer(model: Path, *args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["infer", "--model", str(model), *map(str, args)])
    return result.exit_code, result.output


def secrets_of(files: dict[str, Path]) -> set[str]:
    """Everything in this archive that identifies a person or a study, as it appears in names and tags."""
    found = {NAME, ACCESSION, FAILED_NAME, FAILED_ACCESSION, folder_of(NAME), folder_of(FAILED_NAME), "PID-ROE-3"}
    for key in ("CC", "MLO"):
        ds = pydicom.dcmread(files[key])
        found |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
    return found


def test_reports_name_images_by_their_dicom_identity_never_by_their_path(tiny_onnx, archive, tmp_path):
    out = tmp_path / "out"
    code, output = infer(tiny_onnx, "-r", archive["png"].parent, "--out", out, "--no-phi")
    assert code == 1, output  # the truncated file fails; the run goes on
    reports = {name: (out / name).read_text() for name in ("results.json", "lesions.csv")}
    for name, text in reports.items():
        leaked = sorted(s for s in secrets_of(archive) if s in text)
        assert not leaked, f"{name} holds {leaked}"
        assert str(archive["png"].parent) not in text, f"{name} holds a path"
    results = json.loads(reports["results.json"])
    names = sorted(entry["name"] for entry in results["images"])
    expected = sorted([*(hashlib.sha256(pydicom.dcmread(archive[v]).SOPInstanceUID.encode()).hexdigest()[:16]
                         for v in ("CC", "MLO")),
                       hashlib.sha256(archive["png"].read_bytes()).hexdigest()[:16]])
    assert names == expected, "names: the documented pseudonyms (SOP Instance UID, else the bytes)"
    assert all(entry["file"] == entry["name"] and "path" not in entry["source"] for entry in results["images"])
    assert all("path" not in record for entry in results["images"] for record in entry["outputs"].values())
    assert {row["image"] for row in csv.DictReader(io.StringIO(reports["lesions.csv"]))} <= set(names)
    # the failure row of the patient whose images all failed: named by its bytes, its message without the path
    failed = results["failed"]
    assert len(failed) == 1
    assert failed[0]["file"] == hashlib.sha256(archive["broken"].read_bytes()).hexdigest()[:16]
    assert failed[0]["error"].startswith(failed[0]["file"] + ": ")
    # reproducible: the same names in a second run into another folder
    infer(tiny_onnx, "-r", archive["png"].parent, "--out", tmp_path / "again", "--no-phi")
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert sorted(entry["name"] for entry in again["images"]) == names


def test_identifiers_are_replaced_as_whole_values_not_substrings(tiny_onnx, archive, tmp_path):
    """Patient ID `png` must not turn `x.png` into `x.[removed]` anywhere (a message, a name)."""
    out = tmp_path / "out"
    infer(tiny_onnx, "-r", archive["png"].parent, "--out", out, "--no-phi")
    for name in ("results.json", "lesions.csv"):
        text = (out / name).read_text()
        assert ".[removed]" not in text and "[removed]." not in text, name


def test_without_no_phi_the_reports_keep_paths_and_names(tiny_onnx, archive, tmp_path):
    out = tmp_path / "out"
    infer(tiny_onnx, "-r", archive["png"].parent, "--out", out)
    results = json.loads((out / "results.json").read_text())
    assert f"{folder_of(NAME)}/{ACCESSION}_L_CC" in {entry["name"] for entry in results["images"]}
