"""The local driver and the Ray driver are two drivers of one pipeline (runtime/run/driver.py): the same
inputs (PNG and DICOM, one broken file) with every output kind, DICOM SEG included, give the same ledger
rows, output files, reports and summary lines, field by field. Real Ray, private and on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax
from tests.tiny_models import synthetic_png

pytestmark = [pytest.mark.slow]
pytest.importorskip("ray.data", reason="needs Ray Data (the ray extra)")
pytest.importorskip("highdicom", reason="needs the dicom extra")

# what differs between two runs of the same work by nature: when, how long, which run, which node
RUN_FIELDS = {"started", "finished", "run_id", "spans", "read_ms", "hash_ms", "decode_ms", "preprocess_ms",
              "infer_ms", "postprocess_ms", "write_ms"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("agree_in")
    for seed in range(3):
        (folder / "png" / f"case_{seed}.png").parent.mkdir(exist_ok=True)
        (folder / "png" / f"case_{seed}.png").write_bytes(synthetic_png(seed, height=300, width=240))
    for seed in range(2):
        ds = mammogram_dataset(mammogram_pixels((320, 256), seed=seed), patient_id=f"P{seed}", seed=seed)
        write_syntax(ds, "explicit", folder / "dicom" / f"P{seed}" / "1-1.dcm")  # repeated names, as archives have
    (folder / "png" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def infer(model: Path, inputs: Path, out: Path, *extra: str):
    return CliRunner().invoke(cli, ["infer", "--model", str(model), "-r", str(inputs), "--out", str(out),
                                    "--save", "masks,biner,vis,seg", *extra])


def rows(out: Path) -> dict[str, dict]:
    with sqlite3.connect(out / "ledger.sqlite") as db:
        db.row_factory = sqlite3.Row
        found = {}
        for row in db.execute("SELECT * FROM images"):
            row = {k: row[k] for k in row.keys() if k not in RUN_FIELDS}
            if row["image"]:
                row["image"] = {k: v for k, v in json.loads(row["image"]).items() if k != "node"}
            row["outputs"] = json.loads(row["outputs"] or "{}")
            found[row["source"]] = row
        return found


def without_run_fields(entry: dict) -> dict:
    """A report entry less when and where it ran, and the SEG file's own hash (new UIDs in every SEG)."""
    entry = {k: v for k, v in entry.items() if k not in ("started", "finished", "node", "time_ms")}
    if "seg" in entry.get("outputs", {}):
        entry["outputs"] = {**entry["outputs"], "seg": {"path": entry["outputs"]["seg"]["path"]}}
    return entry


def seg_segments(path: Path) -> dict:
    import pydicom

    from bcdeploy.runtime.dicom_seg import seg_masks

    return {label: mask.tobytes() for label, mask in seg_masks(pydicom.dcmread(path)).items()}


def test_local_and_ray_drivers_agree_field_by_field(tmp_path, inputs, threshold_onnx):
    model = threshold_onnx
    local = infer(model, inputs, tmp_path / "local")
    on_ray = infer(model, inputs, tmp_path / "ray", "--ray", "local", "--replicas", "1", "--cpus-per-replica", "0.5")
    assert local.exit_code == on_ray.exit_code == 1, (local.output, on_ray.output)  # the broken file
    summary = [line for line in local.output.splitlines() if line.startswith("processed")]
    assert summary and summary[0].startswith("processed 5, skipped 0 (done earlier), failed 1")
    assert [line for line in on_ray.output.splitlines() if line.startswith("processed")][0].startswith(
        "processed 5, skipped 0 (done earlier), failed 1")
    for output in (local.output, on_ray.output):  # the same information and failure lines, paths as given
        assert any(line.startswith("cpu: ") for line in output.splitlines()), output
        assert f"failed: {inputs / 'png' / 'broken.png'}:" in output

    local_rows, ray_rows = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert local_rows.keys() == ray_rows.keys() and len(local_rows) == 6
    for source, row in local_rows.items():
        other = ray_rows[source]
        for field in row:
            if field == "outputs":
                continue
            assert row[field] == other[field], (source, field)
        assert row["outputs"].keys() == other["outputs"].keys(), source
        for kind, record in row["outputs"].items():
            mine, theirs = tmp_path / "local" / record["path"], tmp_path / "ray" / other["outputs"][kind]["path"]
            if kind == "seg":  # new UIDs and times in every SEG: compare what it says, not its bytes
                assert seg_segments(mine) == seg_segments(theirs), source
            else:
                assert record == other["outputs"][kind] and mine.read_bytes() == theirs.read_bytes(), (source, kind)
    kinds = {kind for row in local_rows.values() for kind in row["outputs"]}
    assert kinds == {"mask", "biner", "vis", "seg"}
    assert sum("seg" in row["outputs"] for row in local_rows.values()) == 2  # the DICOM inputs only

    local_report = json.loads((tmp_path / "local" / "results.json").read_text())
    ray_report = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert [without_run_fields(e) for e in local_report["images"]] == [without_run_fields(e) for e in ray_report["images"]]
    assert local_report["failed"] == ray_report["failed"]
    assert (tmp_path / "local" / "lesions.csv").read_text() == (tmp_path / "ray" / "lesions.csv").read_text()
