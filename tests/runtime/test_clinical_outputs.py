"""Clinical outputs (issue "Clinical results"): per-lesion and per-image scores in the reports and the
ledger, and for DICOM inputs a SEG, a TID 1500 SR and a Secondary Capture per image, written from
sources with the defects real archives have, each valid for dciodvfy (dicom3tools). Real runs of
`bcdeploy infer` with the threshold segmenter (tests/tiny_models.py), read back with highdicom."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax

hd = pytest.importorskip("highdicom", reason="needs the dicom extra")
pytest.importorskip("onnxruntime")
KINDS = "masks,vis,seg,sr,sc"


def _bright_spots(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A 12-bit mammogram with a few very bright spots: the threshold model finds lesions of both classes."""
    pixels = mammogram_pixels(shape, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        y, x = int(rng.integers(40, shape[0] - 40)), int(rng.integers(40, shape[1] - 40))
        pixels[y - 12:y + 12, x - 9:x + 9] = 4000
    return pixels


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> dict[str, Path]:
    """Two views of one study, with what real archives hold: a Patient Orientation of `CC`, a person
    name in one component, missing Type 2 attributes, a date invalid for DA, no pixel spacing."""
    root = tmp_path_factory.mktemp("clinical") / "in"
    files = {}
    study = None
    for index, (laterality, view) in enumerate((("L", "CC"), ("R", "MLO"))):
        ds = mammogram_dataset(_bright_spots((320, 256), index), patient_id="P9", laterality=laterality, view=view,
                               study_uid=study, seed=index)
        study = ds.StudyInstanceUID
        ds.PatientOrientation = "CC"
        ds.PatientName = "DOE"
        for keyword in ("PatientSex", "StudyID", "ReferringPhysicianName", "AccessionNumber"):
            delattr(ds, keyword)
        if view == "MLO":
            del ds.ImagerPixelSpacing
            ds.StudyDate = "2019-01-05"
        files[view] = write_syntax(ds, "explicit", root / "P9" / f"{view}.dcm")
    return files


@pytest.fixture(scope="module")
def run_out(archive, threshold_onnx, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clinical_out") / "out"
    result = CliRunner().invoke(cli, ["infer", "--model", str(threshold_onnx), "-r", str(archive["CC"].parents[1]),
                                      "--out", str(out), "--save", KINDS])
    assert result.exit_code == 0, result.output
    return out


def csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_sr_measurement_groups_equal_lesions_and_cases(run_out):
    lesions = csv_rows(run_out / "lesions.csv")
    cases = {row["name"]: row for row in csv_rows(run_out / "cases.csv") if row["level"] == "image"}
    assert lesions and {row["class"] for row in lesions} == {"benign", "malignant"}
    for name in ("P9/CC", "P9/MLO"):
        sr = hd.sr.srread(run_out / "sr" / f"{name}.dcm")
        groups = sr.content.get_planar_roi_measurement_groups()
        mine = [row for row in lesions if row["image"] == name]
        assert len(groups) == len(mine) > 0
        in_mm = name == "P9/CC"  # the MLO has no pixel spacing: its sizes stay in pixels, said so by the unit
        for group, row in zip(groups, mine):
            assert group.tracking_identifier == f"lesion {row['lesion_id']}"
            values = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
            area = (float(row["area_mm2"]), "mm2") if in_mm else (float(row["area_px"]), "{pixels}")
            axis = (float(row["longest_diameter_mm"]), "mm") if in_mm else (float(row["longest_diameter_px"]), "{pixels}")
            assert values["Area"][0] == pytest.approx(area[0]) and values["Area"][1] == area[1]
            assert values["Long axis"][0] == pytest.approx(axis[0]) and values["Long axis"][1] == axis[1]
            assert values["Probability of cancer"][0] == pytest.approx(float(row["score"]))
            assert values["Probability of cancer"][1] == "1"
            classes = {q.name.meaning: q.value.meaning for q in group.get_qualitative_evaluations()}
            assert classes["Pathology"] == {"benign": "Neoplasm, benign",
                                            "malignant": "Malignant neoplasm, primary (morphologic abnormality)"
                                            }[row["class"]]
            outline = np.asarray(group.roi.value)
            assert (outline[0] == outline[-1]).all() and len(outline) >= 4  # a closed polygon
            x, y, w, h = (int(row[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
            assert outline[:, 0].min() >= x and outline[:, 0].max() <= x + w  # inside the lesion's box
            assert outline[:, 1].min() >= y and outline[:, 1].max() <= y + h
        (case,) = sr.content.get_image_measurement_groups()
        assert [m.value for m in case.get_measurements()] == pytest.approx([float(cases[name]["case_score"])])


def test_sr_references_the_seg_segment_and_every_object_is_the_sources_patient_and_study(run_out, archive):
    for view in ("CC", "MLO"):
        source = pydicom.dcmread(archive[view])
        seg = pydicom.dcmread(run_out / "seg" / "P9" / f"{view}.dcm")
        sr = pydicom.dcmread(run_out / "sr" / "P9" / f"{view}.dcm")
        sc = pydicom.dcmread(run_out / "sc" / "P9" / f"{view}.dcm")
        for derived in (seg, sr, sc):
            assert (derived.PatientID, derived.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)
            assert derived.SeriesInstanceUID != source.SeriesInstanceUID
            assert str(derived.PatientName) == "DOE^"  # one component, completed (not invented)
        assert len({seg.SeriesInstanceUID, sr.SeriesInstanceUID, sc.SeriesInstanceUID}) == 3  # a series per kind
        referenced = str(hd.sr.srread(run_out / "sr" / "P9" / f"{view}.dcm").content
                         .get_planar_roi_measurement_groups()[0].get_measurements()[0].referenced_images)
        assert seg.SOPInstanceUID in referenced
        assert sc.BurnedInAnnotation == "YES" and "DerivationDescription" in sc
        assert sc.PatientOrientation in ("", None)  # `CC` is no orientation: left empty, never guessed


def test_the_sr_and_the_seg_name_each_class_with_one_code_and_meaning(run_out):
    """They read one entry of runtime/results/dicom/codes.py; the two copies they held had drifted."""
    for view in ("CC", "MLO"):
        seg = pydicom.dcmread(run_out / "seg" / "P9" / f"{view}.dcm")
        in_seg = {item.SegmentLabel: _concept(item.SegmentedPropertyTypeCodeSequence[0])
                  for item in seg.SegmentSequence}
        sr = hd.sr.srread(run_out / "sr" / "P9" / f"{view}.dcm")
        lesions = {row["lesion_id"]: row["class"] for row in csv_rows(run_out / "lesions.csv")
                   if row["image"] == f"P9/{view}"}
        compared = 0
        for group in sr.content.get_planar_roi_measurement_groups():
            name = lesions[group.tracking_identifier.removeprefix("lesion ")]
            (evaluation,) = [q for q in group.get_qualitative_evaluations() if q.name.meaning == "Pathology"]
            assert _concept(evaluation.value) == in_seg[name]
            compared += 1
        assert compared > 0


def _concept(item) -> tuple[str, str, str]:
    return str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="needs dicom3tools (apt-get install dicom3tools)")
def test_every_dicom_object_passes_dciodvfy(run_out):
    written = sorted(p for kind in ("seg", "sr", "sc") for p in (run_out / kind).rglob("*.dcm"))
    assert len(written) == 6
    for path in written:
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{path.relative_to(run_out)}: {errors}"


def test_scores_live_in_the_ledger_and_a_resumed_run_reports_them_unchanged(run_out, archive, threshold_onnx):
    before = {name: (run_out / name).read_text() for name in ("lesions.csv", "cases.csv")}
    results = json.loads((run_out / "results.json").read_text())
    assert results["summary"]["highest_case_score"]["case_score"] == max(
        float(r["case_score"]) for r in csv_rows(run_out / "cases.csv"))
    result = CliRunner().invoke(cli, ["infer", "--model", str(threshold_onnx), "-r", str(archive["CC"].parents[1]),
                                      "--out", str(run_out), "--save", KINDS])
    assert "processed 0, skipped 2" in result.output and "highest case score" in result.output
    assert {name: (run_out / name).read_text() for name in before} == before
    levels = [row["level"] for row in csv_rows(run_out / "cases.csv")]
    assert levels.count("image") == 2 and levels.count("breast") == 2 and levels.count("study") == 1


def test_no_library_warning_reaches_the_terminal(archive, threshold_onnx, tmp_path):
    """A real process: highdicom's person-name warning and pydicom's VR warnings stay hidden; bcdeploy
    says in one line per kind what it repaired."""
    command = [sys.executable, "-m", "bcdeploy.cli", "infer", "--model", str(threshold_onnx),
               "-r", str(archive["CC"].parents[1]), "--out", str(tmp_path / "out"), "--save", KINDS]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "highdicom" not in done.stderr and "pydicom" not in done.stderr, done.stderr
    assert "PatientOrientation 'CC' is not two direction codes" in done.stderr
    assert done.stderr.count("PatientOrientation") == 1  # once, not once per file


def test_each_run_says_its_repairs_once(archive, threshold_onnx, tmp_path, caplog):
    """Once per run, not once per process: a DICOM node runs for months in one process, and a defect in
    next week's study must be said again (with two runs in one process, the second used to say nothing)."""
    import logging

    from bcdeploy.runtime.results.outputs import parse_save
    from bcdeploy.runtime.run import RunOptions, run
    from bcdeploy.runtime.model.segmenter import Segmenter

    folder = archive["CC"].parents[1]
    with Segmenter(threshold_onnx) as model, caplog.at_level(logging.WARNING):
        for index in range(2):
            caplog.clear()
            summary = run(lambda _images: model, [str(folder)], RunOptions(out=tmp_path / f"run{index}", recursive=True,
                                                                    save=parse_save(KINDS)))
            assert summary.processed == 2
            said = [r.getMessage() for r in caplog.records if "PatientOrientation" in r.getMessage()]
            assert len(said) == 1, (index, said)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="needs dicom3tools (apt-get install dicom3tools)")
@pytest.mark.parametrize("where", ["image", "series", "neither"])
def test_laterality_at_image_or_series_level_or_none_gives_valid_objects(where, threshold_onnx, tmp_path):
    """Real archives (CBIS-DDSM) hold the laterality only at series level (Laterality, no ImageLaterality);
    others only per image, some nowhere. SEG, SR and SC keep what the source says (never guess) and pass
    dciodvfy in each case: the General Series' Type 2C Laterality is present, empty where it is unknown
    (issue 35 item 12: the SC from a series-only source had none)."""
    ds = mammogram_dataset(_bright_spots((320, 256), 3), patient_id="P7", laterality="R", view="CC", seed=3)
    for keyword in {"image": ("Laterality",), "series": ("ImageLaterality",),
                    "neither": ("Laterality", "ImageLaterality")}[where]:
        if keyword in ds:
            delattr(ds, keyword)
    if where == "series":
        ds.Laterality = "R"
    source = write_syntax(ds, "explicit", tmp_path / "in" / "R_CC.dcm")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["infer", "--model", str(threshold_onnx), str(source), "--out", str(out),
                                      "--save", KINDS])
    assert result.exit_code == 0, result.output
    for kind in ("seg", "sr", "sc"):
        path = out / kind / "R_CC.dcm"
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{kind} from a source with laterality at {where} level: {errors}"
        derived = pydicom.dcmread(path, stop_before_pixels=True)
        said = {str(derived.get("ImageLaterality") or ""), str(derived.get("Laterality") or "")} - {""}
        assert said <= ({"R"} if where != "neither" else set()), (kind, said)
