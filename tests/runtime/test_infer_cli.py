import json
import shutil

import cv2
import numpy as np
import pytest

from bcdeploy.fileio import sha256_file
from tests.conftest import run_cli
from tests.helpers import gray_to_scanner_formats, gray_with_lesion

pytestmark = pytest.mark.mmseg  # needs the exported tiny model (and PyTorch for the reference masks)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """One generated mammogram with lesions in every format scanners give."""
    return gray_to_scanner_formats(gray_with_lesion(11), tmp_path_factory.mktemp("scans"), "IMG900")


@pytest.fixture(scope="module")
def runs(exported, trained, scans, tmp_path_factory):
    files = list(scans.values())
    ort_out, torch_out = tmp_path_factory.mktemp("ort"), tmp_path_factory.mktemp("torch")
    run_cli("infer", "--engine", exported / "model.onnx", *files, "--out", ort_out)
    run_cli("predict", "--ckpt", trained, *files, "--out", torch_out)
    return ort_out, torch_out


def test_masks_equal_mmseg_pipeline_in_every_format(runs, scans):
    ort_out, torch_out = runs
    for path in scans.values():
        ours = cv2.imread(str(ort_out / "masks" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        ref = cv2.imread(str(torch_out / "masks" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        original = cv2.imread(str(scans["png"]), cv2.IMREAD_UNCHANGED)
        assert ours.shape == ref.shape == original.shape[:2], path.name
        assert (ours == ref).mean() >= 0.999, f"{path.name}: {(ours == ref).mean():.5f}"


def test_outputs_and_reports(runs, scans):
    ort_out, _ = runs
    results = json.loads((ort_out / "results.json").read_text())
    assert results["summary"] == {**results["summary"], "processed": 5, "failed": 0}
    assert results["model"]["backend"] == "onnxruntime" and results["classes"][0] == "background"
    formats = {Path_stem(e["file"]): e["format"] for e in results["images"]}
    assert sorted(formats.values()) == ["dicom", "jpeg", "png", "tiff", "tiff"]
    entry = results["images"][0]
    assert set(entry["time_ms"]) == {"read", "hash", "decode", "preprocess", "infer", "postprocess", "write"}
    assert entry["started"] <= entry["finished"]
    for path in scans.values():
        assert (ort_out / "biner" / f"{path.stem}.png").is_file()
        assert cv2.imread(str(ort_out / "vis" / f"{path.stem}.jpg")) is not None
    header = (ort_out / "lesions.csv").read_text().splitlines()[0]
    assert header.startswith("image,lesion_id,class,area_px,bbox_x")


def Path_stem(p):
    from pathlib import Path

    return Path(p).stem


def test_bad_files_are_listed_and_the_run_goes_on(exported, scans, tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    shutil.copy(scans["png"], bad / "good.png")
    (bad / "empty.png").write_bytes(b"")
    (bad / "truncated.tif").write_bytes(scans["tiff_rgba8"].read_bytes()[:500])
    import tifffile

    tifffile.imwrite(bad / "channels.tif", np.zeros((64, 64, 5), np.uint8), photometric="minisblack", planarconfig="contig")
    cv2.imwrite(str(bad / "absurd.png"), np.zeros((4, 9000), np.uint8))
    before = {p.name: sha256_file(p) for p in bad.iterdir()}
    out = tmp_path / "out"
    proc = run_cli("infer", "--engine", exported / "model.onnx", bad, str(tmp_path / "nothing-*.png"), "--out", out, check=False)
    assert proc.returncode == 1
    results = json.loads((out / "results.json").read_text())
    failed = {Path_stem(f["file"]) for f in results["failed"]}
    assert {"empty", "truncated", "channels", "absurd"} <= failed and "good" not in failed
    assert results["summary"]["processed"] == 1 and (out / "masks" / "good.png").is_file()
    for message in ("empty", "cannot read the TIFF header", "5 channels", "implausible"):
        assert message in proc.stderr
    assert before == {p.name: sha256_file(p) for p in bad.iterdir()}, "inputs must never change"
    assert not list(out.rglob("*.part*")), "no temporary files left behind"


def test_rerun_skips_done_images_unless_overwrite(exported, scans, tmp_path):
    out = tmp_path / "out"
    run_cli("infer", "--engine", exported / "model.onnx", scans["png"], "--out", out)
    mask = out / "masks" / "IMG900_png.png"
    first = mask.stat().st_mtime_ns
    proc = run_cli("infer", "--engine", exported / "model.onnx", scans["png"], "--out", out)
    assert "skipped 1" in proc.stdout and mask.stat().st_mtime_ns == first
    assert json.loads((out / "results.json").read_text())["images"][0]["status"] == "ok"  # kept from run 1
    proc = run_cli("infer", "--engine", exported / "model.onnx", scans["png"], "--out", out, "--overwrite")
    assert "processed 1" in proc.stdout and mask.stat().st_mtime_ns != first


def test_batching_and_sliding_window(exported, scans, tmp_path):
    files = [scans["png"], scans["jpeg"], scans["tiff_rgba8"]]
    run_cli("infer", "--engine", exported / "model.onnx", *files, "--out", tmp_path / "b1")
    run_cli("infer", "--engine", exported / "model.onnx", *files, "--out", tmp_path / "b3", "--batch-size", "3")
    for f in files:
        a = cv2.imread(str(tmp_path / "b1" / "masks" / f"{f.stem}.png"), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / "b3" / "masks" / f"{f.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert (a == b).mean() >= 0.999
    run_cli("infer", "--engine", exported / "model.onnx", scans["png"], "--out", tmp_path / "sw", "--sliding-window",
            "--window", "192x192", "--overlap", "0.5")
    sw = cv2.imread(str(tmp_path / "sw" / "masks" / "IMG900_png.png"), cv2.IMREAD_UNCHANGED)
    assert sw.shape == cv2.imread(str(scans["png"]), cv2.IMREAD_UNCHANGED).shape
    results = json.loads((tmp_path / "sw" / "results.json").read_text())
    assert results["model"]["sliding_window"]["overlap"] == 0.5


def test_metadata_targets_and_missing_provider(exported, scans, tmp_path):
    info = tmp_path / "Info.txt"
    info.write_text("IMG900_png G CIRC B 10 10 5\n")
    run_cli("infer", "--engine", exported / "model.onnx", scans["png"], "--out", tmp_path / "o", "--metadata", info)
    assert json.loads((tmp_path / "o" / "results.json").read_text())["images"][0]["target"] == "B"
    proc = run_cli("infer", "--engine", exported / "model.onnx", scans["png"], "--out", tmp_path / "p",
                   "--provider", "cuda", check=False)
    assert proc.returncode == 1 and "CUDAExecutionProvider is not available" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
