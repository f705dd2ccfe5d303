"""Impossible header values (issue "Reliability round 3", defect 4): a pixel spacing of NaN, inf or 1e300
is no spacing (sizes stay in pixels, said once), every JSON written is strict JSON, and `dicom info`
reads a text magnification factor as absent instead of dying. Real runs with a tiny real ONNX model."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax

pytest.importorskip("onnxruntime")
IMPOSSIBLE = {"nan": "NaN", "inf": "inf", "huge": "1e300", "negative": "-0.1", "zero": "0"}


def _refuse_constants(name: str):
    raise ValueError(f"not strict JSON: {name}")


def write_with_spacing(path: Path, text: str, seed: int) -> Path:
    ds = mammogram_dataset(mammogram_pixels((192, 160), seed=seed), patient_id=f"P{seed}", seed=seed)
    ds.ImagerPixelSpacing = None
    ds.add_new("ImagerPixelSpacing", "DS", [text, text])  # as a file holds it: text, whatever it says
    return write_syntax(ds, "explicit", path)


def test_impossible_spacings_are_no_spacing_and_reports_are_strict_json(threshold_onnx, tmp_path):
    folder = tmp_path / "in"
    for seed, (name, text) in enumerate(IMPOSSIBLE.items()):
        write_with_spacing(folder / f"{name}.dcm", text, seed)
    out = tmp_path / "out"
    # a real process: what its user sees on the terminal, with the process's own "said once" memory
    result = subprocess.run([sys.executable, "-m", "bcdeploy.cli", "infer", "--model", str(threshold_onnx),
                             str(folder), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text(), parse_constant=_refuse_constants)
    rows = list(csv.DictReader(io.StringIO((out / "lesions.csv").read_text())))
    assert rows, "the model must find lesions for the sizes to be checked"
    for row in rows:
        assert row["area_mm2"] == "" and row["bbox_mm"] == "" and row["longest_diameter_mm"] == "", row
    for entry in results["images"]:
        assert entry["tags"]["pixel_spacing_mm"] is None, entry["name"]
    assert result.stderr.count("pixel spacing") == 1, result.stderr  # said once, not once per file


def test_dicom_info_reads_a_text_magnification_factor_as_absent(tmp_path):
    bad = write_with_spacing(tmp_path / "a.dcm", "0.07", 1)
    ds = __import__("pydicom").dcmread(bad)
    ds.add_new(0x00181114, "LO", "abc")  # Estimated Radiographic Magnification Factor, as text in the file
    ds.save_as(bad)
    good = write_with_spacing(tmp_path / "b.dcm", "0.07", 2)
    result = CliRunner().invoke(cli, ["dicom", "info", "--json", str(bad), str(good)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [json.loads(line, parse_constant=_refuse_constants) for line in result.stdout.splitlines()]
    assert [Path(line["file"]).name for line in lines] == ["a.dcm", "b.dcm"]
    assert lines[0]["pixel_spacing_mm"] == [0.07, 0.07]  # the factor is ignored, the spacing stays
