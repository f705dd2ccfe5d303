"""One output kind failing (issue "Reliability round 3", defect 2): the failure line names the kind,
and the image leaves nothing on disk that the ledger does not list (its other outputs of this attempt
are removed, as a failed image has none). A source missing Type 2 attributes is no failure at all: they
are written empty. Real runs with a tiny real ONNX model."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pydicom
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax

pytest.importorskip("highdicom")


def infer(model, folder, out):
    return CliRunner().invoke(cli, ["infer", "--model", str(model), "-r", str(folder), "--out", str(out),
                                    "--save", "masks,vis,seg"])


def test_missing_type2_attributes_are_written_empty(tiny_onnx, tmp_path):
    ds = mammogram_dataset(mammogram_pixels((160, 128), seed=1), seed=1)
    for keyword in ("PatientSex", "StudyID", "StudyDate", "ReferringPhysicianName", "AccessionNumber"):
        delattr(ds, keyword)
    write_syntax(ds, "explicit", tmp_path / "in" / "a.dcm")
    result = infer(tiny_onnx, tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    seg = pydicom.dcmread(tmp_path / "out" / "seg" / "a.dcm")
    assert all(keyword in seg and seg.get(keyword) in ("", None) for keyword in ("PatientSex", "StudyID", "AccessionNumber"))


def test_a_failed_kind_is_named_and_leaves_no_output_the_ledger_does_not_list(tiny_onnx, tmp_path):
    ds = mammogram_dataset(mammogram_pixels((160, 128), seed=2), seed=2)
    del ds.StudyInstanceUID  # Type 1: no SEG can be of "the same study"; the pixels still decode
    write_syntax(ds, "explicit", tmp_path / "in" / "bad.dcm")
    write_syntax(mammogram_dataset(mammogram_pixels((160, 128), seed=3), seed=3), "explicit", tmp_path / "in" / "ok.dcm")
    out = tmp_path / "out"
    result = infer(tiny_onnx, tmp_path / "in", out)
    assert result.exit_code == 1 and "processed 1," in result.output, result.output
    failures = [line for line in result.output.splitlines() if line.strip().startswith("failed:")]
    assert len(failures) == 1 and "bad.dcm" in failures[0] and "seg" in failures[0], failures
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db:
        listed = {record["path"] for (outputs,) in db.execute("SELECT outputs FROM images WHERE outputs IS NOT NULL")
                  for record in json.loads(outputs).values()}
    on_disk = {p.relative_to(out).as_posix() for kind in ("masks", "vis", "seg") for p in (out / kind).rglob("*")
               if p.is_file()}
    assert on_disk == listed and not any("bad" in path for path in on_disk)
