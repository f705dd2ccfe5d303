"""`--save cad`: one Mammography CAD SR (TID 4000) per study, made by real `bcdeploy infer` runs of the
threshold segmenter (tests/tiny_models.py) over generated 4-view studies, some with the defects real
archives have, read back with pydicom and checked by independent readers (dicom3tools' dciodvfy, DCMTK's
dsrdump with its Mammography CAD SR constraint checker)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax

pytest.importorskip("highdicom", reason="needs the dicom extra")
pytest.importorskip("onnxruntime")

CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
VIEWS = (("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))


def _spots(shape, seed):
    pixels = mammogram_pixels(shape, seed=seed)
    for k in range(2):  # bright (malignant for the threshold model) and mid (benign) blobs
        y, x = 60 + 90 * k + 7 * seed, 50 + 40 * k + 5 * seed
        pixels[y:y + 20, x:x + 16] = 4000 if k == 0 else 2300
    return pixels


def _study(root: Path, patient: str, *, defects: bool = False, failing: str | None = None) -> str:
    """A 4-view study (L/R x CC/MLO). `defects`: what real archives hold (Patient Orientation `CC`, a
    one-component name, missing Type 2 attributes, no pixel spacing). `failing`: this view's pixel data is
    cut short, so it fails after its header was read."""
    study = None
    for index, (laterality, view) in enumerate(VIEWS):
        ds = mammogram_dataset(_spots((320, 256), index), patient_id=patient, laterality=laterality, view=view,
                               study_uid=study, seed=index)
        study = ds.StudyInstanceUID
        if defects:
            ds.PatientOrientation, ds.PatientName = "CC", "DOE"
            del ds.ImagerPixelSpacing
            for keyword in ("PatientSex", "StudyID", "ReferringPhysicianName", "AccessionNumber"):
                delattr(ds, keyword)
        if failing == f"{laterality}{view}":
            ds.PixelData = ds.PixelData[:1000]
        write_syntax(ds, "explicit", root / patient / f"{laterality}_{view}.dcm")
    return study


@pytest.fixture(scope="module")
def studies(tmp_path_factory, threshold_onnx):
    root = tmp_path_factory.mktemp("cad") / "in"
    clean = _study(root, "P1")
    defective = _study(root, "P2", defects=True, failing="RMLO")
    out = root.parent / "out"
    result = CliRunner().invoke(cli, ["infer", "--model", str(threshold_onnx), "-r", str(root), "--out", str(out),
                                      "--save", "masks,cad", "--cad-threshold", "0.9"])
    assert result.exit_code == 1, result.output  # the cut view failed: the exit code says so
    assert "CAD marks: 'Presentation Required' at lesion score >= 0.9 (--cad-threshold)" in result.output
    return {"out": out, "clean": clean, "defective": defective, "output": result.output}


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _named(items, value: str):
    return [i for i in items if "ConceptNameCodeSequence" in i and i.ConceptNameCodeSequence[0].CodeValue == value]


def _one(items, value: str):
    found = _named(items, value)
    assert len(found) == 1, (value, len(found))
    return found[0]


def _number(item) -> float:
    return float(item.MeasuredValueSequence[0].NumericValue)


def _resolve(ds, path: list[int]):
    items, item = ds.ContentSequence, None
    for position in path[1:]:
        item = items[position - 1]
        items = item.get("ContentSequence", [])
    return item


def _cad(out: Path, study: str):
    return pydicom.dcmread(out / "cad" / f"{study}.dcm")


def _findings(ds):
    """(image SOP instance, finding code, certainty %, centre (x, y), intent code) of each Single Image Finding."""
    summary = _one(ds.ContentSequence, "111017")
    found = []
    for impression in _named(summary.get("ContentSequence", []), "111034"):
        finding = _one(impression.ContentSequence, "111059")
        center = _one(finding.ContentSequence, "111010")
        entry = _resolve(ds, list(center.ContentSequence[0].ReferencedContentItemIdentifier))
        found.append((entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID,
                      finding.ConceptCodeSequence[0].CodeValue,
                      _number(_one(finding.ContentSequence, "111012")), tuple(center.GraphicData),
                      _one(finding.ContentSequence, "111056").ConceptCodeSequence[0].CodeValue))
    return found


def test_one_cad_sr_per_study_whose_findings_equal_lesions_csv(studies):
    out = studies["out"]
    assert sorted(p.name for p in (out / "cad").iterdir()) == sorted(f"{s}.dcm" for s in (studies["clean"],
                                                                                           studies["defective"]))
    ds = _cad(out, studies["clean"])
    assert ds.SOPClassUID == CAD_SR and ds.StudyInstanceUID == studies["clean"] and ds.Modality == "SR"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "4000"
    library = _one(ds.ContentSequence, "111028").ContentSequence
    results = json.loads((out / "results.json").read_text())
    by_uid = {e["tags"]["sop_instance_uid"]: e for e in results["images"]}
    clean = {uid: e for uid, e in by_uid.items() if e["tags"]["study_instance_uid"] == studies["clean"]}
    assert {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in library} == set(clean) and len(clean) == 4
    for entry in library:  # TID 4020: laterality and view coded, spacing in micrometres, dimensions
        image = clean[entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID]
        side = _one(entry.ContentSequence, "111027").ConceptCodeSequence[0].CodeValue
        assert side == {"L": "80248007", "R": "73056007"}[image["tags"]["laterality"]]
        view = _one(entry.ContentSequence, "111031").ConceptCodeSequence[0].CodeValue
        assert view == {"CC": "399162004", "MLO": "399368009"}[image["tags"]["view_position"]]
        assert _number(_one(entry.ContentSequence, "111026")) == pytest.approx(70.0)
        assert (_number(_one(entry.ContentSequence, "110910")), _number(_one(entry.ContentSequence, "110911"))) == (
            image["size"][1], image["size"][0])

    lesions = [r for r in _rows(out / "lesions.csv") if r["image"] in {e["name"] for e in clean.values()}]
    names = {e["name"]: uid for uid, e in clean.items()}
    findings = sorted(_findings(ds), key=lambda f: (f[0], f[3]))
    expected = sorted(((names[r["image"]], "4147007", 100 * float(r["score"]),
                        (float(r["centroid_x"]) + 0.5, float(r["centroid_y"]) + 0.5)) for r in lesions),
                      key=lambda f: (f[0], f[3]))
    assert len(findings) == len(expected) >= 8
    for got, want in zip(findings, expected):
        assert got[:2] == want[:2] and got[2] == pytest.approx(want[2], abs=1e-6)
        assert max(abs(a - b) for a, b in zip(got[3], want[3])) <= 1.0
        # the operating point: Required at or above --cad-threshold, Optional below
        assert got[4] == ("111150" if got[2] >= 90.0 else "111151")
    assert {f[4] for f in findings} == {"111150", "111151"}  # the threshold splits this study's marks

    study_row = next(r for r in _rows(out / "cases.csv") if r["level"] == "study" and r["study"] == studies["clean"])
    summary = _one(ds.ContentSequence, "111017")
    assert summary.ConceptCodeSequence[0].CodeValue == "111242"  # all algorithms succeeded; with findings
    assert _number(_one(summary.ContentSequence, "111047")) == pytest.approx(100 * float(study_row["case_score"]))
    detections = _one(ds.ContentSequence, "111064")
    assert detections.ConceptCodeSequence[0].CodeValue == "111222"  # Succeeded


def test_a_failed_view_is_a_failed_detection_not_silence(studies):
    ds = _cad(studies["out"], studies["defective"])
    library = _one(ds.ContentSequence, "111028").ContentSequence
    assert len(library) == 4  # the failed view is in the library too
    detections = _one(ds.ContentSequence, "111064")
    assert detections.ConceptCodeSequence[0].CodeValue == "111223"  # Partially Succeeded

    def images_of(container_code):
        performed = _one(_one(detections.ContentSequence, container_code).ContentSequence, "111022")
        refs = [i for i in performed.ContentSequence if "ReferencedContentItemIdentifier" in i]
        return {_resolve(ds, list(r.ReferencedContentItemIdentifier)).ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                for r in refs}

    failed, succeeded = images_of("111025"), images_of("111063")
    assert len(failed) == 1 and len(succeeded) == 3 and not failed & succeeded
    results = json.loads((studies["out"] / "results.json").read_text())
    assert failed.isdisjoint({e["tags"]["sop_instance_uid"] for e in results["images"]})
    assert _one(ds.ContentSequence, "111017").ConceptCodeSequence[0].CodeValue == "111244"  # not all; findings
    # the defective header was repaired, not copied: one-component name completed, orientation not copied
    assert str(ds.PatientName) == "DOE^" and "PatientOrientation" not in ds


def test_results_json_never_shows_the_study_header(studies):
    text = (studies["out"] / "results.json").read_text()
    assert "study_header" not in text and "Test^P1" not in text


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="needs dicom3tools (apt-get install dicom3tools)")
def test_every_cad_sr_passes_dciodvfy(studies):
    written = sorted((studies["out"] / "cad").glob("*.dcm"))
    assert len(written) == 2
    for path in written:
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"


@pytest.mark.skipif(shutil.which("dsrdump") is None, reason="needs DCMTK (apt-get install dcmtk)")
def test_dcmtk_reads_every_cad_sr_without_a_warning(studies):
    for path in sorted((studies["out"] / "cad").glob("*.dcm")):
        report = subprocess.run(["dsrdump", "-Ee", str(path)], capture_output=True, text=True)
        assert report.returncode == 0, report.stderr
        # DCMTK says once that it checks IOD constraints, not templates; anything else is a finding
        lines = [l for l in report.stderr.splitlines() if "template constraints not yet supported" not in l]
        assert lines == [], f"{path.name}: {lines}"
        assert "Mammography CAD SR" in report.stdout and "Single Image Finding" in report.stdout


def test_a_rerun_with_another_threshold_rewrites_the_study_reports_only(studies, threshold_onnx, tmp_path):
    """Nothing is re-segmented (the resume rule), yet each touched study's CAD SR is rewritten with the
    new operating point: the report is never stale."""
    out = studies["out"]
    before = {p.name: p.read_bytes() for p in (out / "cad").iterdir()}
    root = out.parent / "in"
    result = CliRunner().invoke(cli, ["infer", "--model", str(threshold_onnx), "-r", str(root), "--out", str(out),
                                      "--save", "masks,cad", "--cad-threshold", "0.0"])
    assert "0 processed" in result.output or "skipped" in result.output, result.output
    for name, data in before.items():
        assert (out / "cad" / name).read_bytes() != data
    intents = {f[4] for f in _findings(_cad(out, studies["clean"]))}
    assert intents == {"111150"}


def test_the_same_run_again_keeps_each_report_and_its_uid(studies, threshold_onnx):
    """Nothing changed (images, model, operating point): no second report of the same findings."""
    out = studies["out"]
    before = {p.name: p.read_bytes() for p in (out / "cad").iterdir()}
    CliRunner().invoke(cli, ["infer", "--model", str(threshold_onnx), "-r", str(out.parent / "in"), "--out", str(out),
                             "--save", "masks,cad", "--cad-threshold", "0.0"])
    assert {p.name: p.read_bytes() for p in (out / "cad").iterdir()} == before


def test_ctrl_c_part_way_writes_no_report_of_a_part_done_study_and_the_rerun_writes_the_whole(threshold_onnx,
                                                                                               tmp_path):
    import sys

    from tests.helpers import interrupt_after_first_image

    root, out = tmp_path / "in", tmp_path / "out"
    study = None
    for index in range(40):  # one study of many views: the interrupt lands inside it
        laterality, view = VIEWS[index % 4]
        ds = mammogram_dataset(_spots((480, 400), index % 7), patient_id="P3", laterality=laterality, view=view,
                               study_uid=study, seed=index)
        study = ds.StudyInstanceUID
        write_syntax(ds, "explicit", root / f"{index:02d}.dcm")
    cmd = [sys.executable, "-m", "bcdeploy.cli", "infer", "--model", str(threshold_onnx), str(root), "--out", str(out),
           "--save", "masks,cad"]
    returncode, _, stderr = interrupt_after_first_image(cmd, out / "ledger.sqlite")
    assert returncode == 130 and "interrupted" in stderr, stderr
    assert not (out / "cad").exists() or not list((out / "cad").iterdir())
    result = CliRunner().invoke(cli, ["infer", "--model", str(threshold_onnx), str(root), "--out", str(out),
                                      "--save", "masks,cad"])
    assert result.exit_code == 0, result.output
    library = _one(_cad(out, study).ContentSequence, "111028").ContentSequence
    assert len(library) == 40
