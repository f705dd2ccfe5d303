"""The batch run loop behind `infer`/`predict` (issue 11): outputs bound to their input and model, a
crash-safe ledger, one bad file never stops a run, write failures and empty inputs are one line each.

Driven through the real CLI in-process (click's runner) with the exported tiny model; the SIGINT
test uses a real subprocess because a signal must reach a real process.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from bcdeploy.fileio import sha256_file
from tests.badinputs import make_tree, mammogram, unlistable, write_tiff
from tests.helpers import interrupt_after_first_image

pytestmark = pytest.mark.mmseg  # needs the exported tiny model

LEDGER = "ledger.sqlite"


def infer(model: Path, *args) -> tuple[int, str, str]:
    # --engine: the name every existing command line uses (and today's code knows); --model has its own test
    result = CliRunner().invoke(cli, ["infer", "--engine", str(model), *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def messages(stderr: str) -> list[str]:
    """stderr without the progress bar's label line and infer's `cpu: ...` start line."""
    return [line for line in stderr.strip().splitlines()
            if line.strip() not in ("infer", "predict") and not line.startswith("cpu: ")]


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and os.access(p.parent, os.X_OK)}


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def by_name(out: Path) -> dict[str, dict]:
    return {entry["name"]: entry for entry in results(out)["images"]}


@pytest.fixture()
def model(exported) -> Path:
    return exported / "model.onnx"


# --- finding 1: identity-bound outputs ------------------------------------------------------------------

def test_nested_tree_gives_a_mirrored_tree_and_a_complete_report(model, tmp_path):
    tree = make_tree(tmp_path / "archive", seed=1)
    before = hashes(tree.root)
    out = tmp_path / "out"
    code, stdout, stderr = infer(model, tree.root, "-r", "--out", out)
    assert code == 1, "bad files in the tree must make the exit code non-zero"
    names = {str(p.relative_to(tree.root).with_suffix("")) for p in tree.good}
    assert set(by_name(out)) == names
    for name in names:
        for kind, suffix in (("masks", ".png"), ("biner", ".png"), ("vis", ".jpg")):
            assert (out / kind / f"{name}{suffix}").stat().st_size > 0, (kind, name)
    for entry in by_name(out).values():  # each output is bound to its own source
        assert Path(entry["source"]["path"]) == tree.root / f"{entry['name']}.tif"
        assert entry["source"]["sha256"] == sha256_file(entry["source"]["path"])
    failed = " ".join(f["error"] for f in results(out)["failed"])
    for case, path in tree.bad.items():
        assert path.name in failed and path.name in stderr, case
    assert tree.empty_dir.name in failed
    assert before == hashes(tree.root), "inputs must never change"
    assert not list(out.rglob("*.part*"))
    lesion_images = {line.split(",")[0] for line in (out / "lesions.csv").read_text().splitlines()[1:]}
    assert lesion_images <= names


def test_another_patients_file_with_the_same_name_is_segmented_not_skipped(model, tmp_path):
    a = write_tiff(tmp_path / "patient_a" / "L_CC.tif", mammogram(__import__("numpy").random.default_rng(1)))
    b = write_tiff(tmp_path / "patient_b" / "L_CC.tif", mammogram(__import__("numpy").random.default_rng(2)))
    out = tmp_path / "out"
    assert infer(model, a, "--out", out)[0] == 0
    code, stdout, _ = infer(model, b, "--out", out)
    assert code == 0 and "processed 1" in stdout
    entries = by_name(out)
    assert {e["source"]["path"] for e in entries.values()} == {str(a.resolve()), str(b.resolve())}
    for name, entry in entries.items():  # each mask is the one computed from its own file
        mask = cv2.imread(str(out / "masks" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert sha256_file(out / "masks" / f"{name}.png") == entry["outputs"]["mask"]["sha256"]
        assert mask.shape == cv2.imread(entry["source"]["path"]).shape[:2]
    # a re-run of either one is skipped: its name stays bound to its source
    code, stdout, _ = infer(model, a, b, "--out", out)
    assert code == 0 and "skipped 2" in stdout


def test_two_arguments_that_collide_get_stable_distinct_names(model, tmp_path):
    rng = __import__("numpy").random.default_rng(3)
    first = write_tiff(tmp_path / "x" / "p" / "1-1.tif", mammogram(rng))
    second = write_tiff(tmp_path / "y" / "p" / "1-1.tif", mammogram(rng))
    out = tmp_path / "out"
    code, stdout, _ = infer(model, tmp_path / "x", tmp_path / "y", "-r", "--out", out)
    assert code == 0 and "processed 2" in stdout
    names = {e["name"]: e["source"]["path"] for e in results(out)["images"]}
    assert names == {"p/1-1": str(first.resolve()), "p/1-1~2": str(second.resolve())}
    code, stdout, _ = infer(model, tmp_path / "x", tmp_path / "y", "-r", "--out", out)
    assert "skipped 2" in stdout and {e["name"]: e["source"]["path"] for e in results(out)["images"]} == names


def test_rerun_skips_only_what_is_provably_the_same(model, exported, tmp_path):
    rng = __import__("numpy").random.default_rng(4)
    image = write_tiff(tmp_path / "in" / "L_CC.tif", mammogram(rng))
    out = tmp_path / "out"
    assert infer(model, image, "--out", out)[0] == 0
    assert "skipped 1" in infer(model, image, "--out", out)[1]
    (out / "masks" / "L_CC.png").write_bytes(b"")  # a 0-byte leftover of a crash
    assert "processed 1" in infer(model, image, "--out", out)[1]
    assert cv2.imread(str(out / "masks" / "L_CC.png")) is not None
    other = tmp_path / "other_model"
    other.mkdir()
    fp16 = exported / "model.fp16.onnx"
    shutil.copy(fp16, other / "model.onnx")
    for sidecar in exported.glob("model.fp16*.json"):
        shutil.copy(sidecar, other / sidecar.name.replace("model.fp16", "model"))
    code, stdout, _ = infer(other / "model.onnx", image, "--out", out)
    assert code == 0 and "processed 1" in stdout, "another model must recompute"
    assert by_name(out)["L_CC"]["model"]["sha256"] == sha256_file(other / "model.onnx")
    code, stdout, _ = infer(other / "model.onnx", image, "--out", out, "--sliding-window", "--window", "64x64")
    assert "processed 1" in stdout, "a mask-changing option must recompute"
    os.utime(image, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert "processed 1" in infer(other / "model.onnx", image, "--out", out, "--sliding-window", "--window", "64x64")[1]


# --- finding 2: the ledger -------------------------------------------------------------------------------

def test_corrupt_ledger_is_an_error_naming_it(model, tmp_path):
    image = write_tiff(tmp_path / "in" / "a.tif", mammogram(__import__("numpy").random.default_rng(5)))
    out = tmp_path / "out"
    out.mkdir()
    (out / LEDGER).write_bytes(b"this is not a database" * 100)
    code, stdout, stderr = infer(model, image, "--out", out)
    assert code == 1 and str(out / LEDGER) in stderr
    assert not (out / "results.json").exists() and not (out / "lesions.csv").exists()


def test_reports_list_earlier_runs_and_survive_a_lost_results_json(model, tmp_path):
    rng = __import__("numpy").random.default_rng(6)
    first = [write_tiff(tmp_path / "in" / f"{i}.tif", mammogram(rng)) for i in range(3)]
    out = tmp_path / "out"
    infer(model, *first[:2], "--out", out)
    (out / "results.json").write_text("{ corrupt")
    (out / "lesions.csv").unlink()
    infer(model, *first, "--out", out)
    assert set(by_name(out)) == {"0", "1", "2"}
    rows = (out / "lesions.csv").read_text().splitlines()[1:]
    assert sum(len(e["lesions"]) for e in results(out)["images"]) == len(rows)
    with closing(sqlite3.connect(out / LEDGER)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0] == 3


def _strip_timings(report: dict) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in ("time_ms", "started", "finished", "run")} for e in report["images"]]


@pytest.mark.slow
def test_sigint_part_way_then_rerun_equals_an_uninterrupted_run(model, tmp_path):
    rng = __import__("numpy").random.default_rng(7)
    images = tmp_path / "in"
    for index in range(40):
        write_tiff(images / f"p{index:02d}" / "L_CC.tif", mammogram(rng, 480, 400))
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert infer(model, images, "-r", "--out", whole)[0] == 0
    cmd = [sys.executable, "-m", "bcdeploy.cli", "infer", "--engine", str(model), str(images), "-r", "--out", str(broken)]
    returncode, stdout, stderr = interrupt_after_first_image(cmd, broken / LEDGER)
    assert returncode == 130, (stdout, stderr)
    assert "interrupted" in stderr and "finished" in stderr
    assert "Traceback" not in stderr
    with closing(sqlite3.connect(broken / LEDGER)) as db:
        done = db.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0]
    assert 1 <= done < 40, "the interrupt must land part-way"
    # the count said is the count recorded (a Ctrl-C between a committed row and its count lost one)
    assert f"interrupted: {done} image(s) finished" in stderr, stderr
    code, stdout, _ = infer(model, images, "-r", "--out", broken)
    assert code == 0 and f"skipped {done}" in stdout
    assert _strip_timings(results(broken)) == _strip_timings(results(whole))
    assert (broken / "lesions.csv").read_text() == (whole / "lesions.csv").read_text()


# --- finding 3: one odd file never stops the run ---------------------------------------------------------

def test_huge_header_is_a_failure_line_and_max_pixels_is_an_option(model, tmp_path):
    tree = make_tree(tmp_path / "in", seed=8, patients=1)
    out = tmp_path / "out"
    code, _, stderr = infer(model, tree.bad["huge_header"], *tree.good, "--out", out)
    assert code == 1 and "huge.tif" in stderr and "Traceback" not in stderr
    assert len(by_name(out)) == len(tree.good)
    code, _, stderr = infer(model, *tree.good, "--out", tmp_path / "small", "--max-pixels", "1000")
    assert code == 1 and len(results(tmp_path / "small")["failed"]) == len(tree.good)


# --- finding 5: write failures ----------------------------------------------------------------------------

def test_out_under_a_file_is_one_line(model, tmp_path):
    image = write_tiff(tmp_path / "in" / "a.tif", mammogram(__import__("numpy").random.default_rng(9)))
    (tmp_path / "file").write_text("x")
    code, _, stderr = infer(model, image, "--out", tmp_path / "file" / "out")
    assert code == 1 and len(messages(stderr)) == 1 and messages(stderr)[0].startswith("error: ")
    assert str(tmp_path / "file") in stderr


def test_full_disk_for_the_ledger_is_one_line(model, tmp_path):
    image = write_tiff(tmp_path / "in" / "a.tif", mammogram(__import__("numpy").random.default_rng(10)))
    out = tmp_path / "out"
    out.mkdir()
    (out / LEDGER).symlink_to("/dev/full")  # every write there fails with ENOSPC
    code, _, stderr = infer(model, image, "--out", out)
    assert code == 1 and len(messages(stderr)) == 1
    assert str(out / LEDGER) in stderr and ("full" in stderr or "space" in stderr)


def test_report_that_cannot_be_written_keeps_what_finished(model, tmp_path):
    rng = __import__("numpy").random.default_rng(11)
    images = [write_tiff(tmp_path / "in" / f"{i}.tif", mammogram(rng)) for i in range(2)]
    out = tmp_path / "out"
    (out / "results.json").mkdir(parents=True)  # a directory where the report must go
    code, _, stderr = infer(model, *images, "--out", out)
    assert code == 1 and "results.json" in stderr and "Traceback" not in stderr
    assert (out / "masks" / "0.png").is_file() and (out / "masks" / "1.png").is_file()
    (out / "results.json").rmdir()
    code, stdout, _ = infer(model, *images, "--out", out)
    assert code == 0 and "skipped 2" in stdout and set(by_name(out)) == {"0", "1"}


def _tmpfs(path: Path, size: str, *flags: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    options = ",".join((f"size={size}", *flags))
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


@pytest.mark.slow
def test_read_only_and_full_file_systems(model, tmp_path):
    rng = __import__("numpy").random.default_rng(12)
    images = [write_tiff(tmp_path / "in" / f"{i}.tif", mammogram(rng, 480, 400)) for i in range(6)]
    ro, full = tmp_path / "ro", tmp_path / "full"
    if not _tmpfs(ro, "1m", "ro"):
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    try:
        code, _, stderr = infer(model, *images, "--out", ro / "out")
        assert code == 1 and str(ro) in stderr and "read-only" in stderr.lower()
        assert len(messages(stderr)) == 1
        assert infer(model, *images, "--out", tmp_path / "sized")[0] == 0
        needed = sum(p.stat().st_size for p in (tmp_path / "sized").rglob("*") if p.is_file())
        assert _tmpfs(full, f"{needed // 2 // 4096 * 4}k")  # room for about half of the run
        code, _, stderr = infer(model, *images, "--out", full / "out")
        assert code == 1 and "No space left" in stderr and "Traceback" not in stderr
        assert len(messages(stderr)) == 1 and messages(stderr)[0].startswith("error: ")
        with closing(sqlite3.connect(full / "out" / LEDGER)) as db:
            done = [r[0] for r in db.execute("SELECT name FROM images WHERE status = 'ok'")]
        assert 1 <= len(done) < 6
        for name in done:
            assert (full / "out" / "masks" / f"{name}.png").stat().st_size > 0
        subprocess.run(["mount", "-o", "remount,size=8m", str(full)], check=True)
        code, stdout, _ = infer(model, *images, "--out", full / "out")
        assert code == 0 and f"skipped {len(done)}" in stdout and len(by_name(full / "out")) == 6
    finally:
        for mount in (ro, full):
            subprocess.run(["umount", str(mount)], capture_output=True)


# --- finding 6: inputs that give nothing ------------------------------------------------------------------

def test_inputs_that_give_nothing_are_failures(model, tmp_path):
    tree = make_tree(tmp_path / "in", seed=13, patients=1)
    out = tmp_path / "out"
    code, _, stderr = infer(model, tree.empty_dir, "--out", out)
    assert code == 1 and tree.empty_dir.name in stderr and "no image" in stderr
    code, _, stderr = infer(model, tree.bad["dangling"], tree.bad["loop"], "--out", out)
    assert code == 1 and "dangling.tif" in stderr and "loop_a.tif" in stderr
    locked = unlistable(tmp_path)
    if locked is not None:
        code, _, stderr = infer(model, locked, tree.good[0], "--out", out)
        assert code == 1 and str(locked) in stderr and len(by_name(out)) == 1


def test_out_overlapping_an_input_or_the_model_is_refused(model, tmp_path):
    tree = make_tree(tmp_path / "in", seed=14, patients=1)
    for out in (tree.root / "out", tree.root, model.parent):
        code, _, stderr = infer(model, tree.root, "--out", out, "--overwrite")
        assert code == 1 and "refusing" in stderr, out
    assert not (tree.root / "out").exists()


# --- issue 14: one predictor shape, --model with --engine kept -------------------------------------------

def test_model_option_with_engine_kept_as_its_alias(model, tmp_path):
    image = write_tiff(tmp_path / "in" / "a.tif", mammogram(__import__("numpy").random.default_rng(15)))
    for option in ("--model", "--engine"):
        result = CliRunner().invoke(cli, ["infer", option, str(model), str(image), "--out", str(tmp_path / option)])
        assert result.exit_code == 0 and (tmp_path / option / "masks" / "a.png").is_file(), result.output


def test_segmenter_is_a_predictor(model):
    from bcdeploy.runtime.images.imageio import decode_image
    from bcdeploy.runtime.model.predictor import Predictor
    from bcdeploy.runtime.model.segmenter import Segmenter

    image = decode_image(cv2.imencode(".png", mammogram(__import__("numpy").random.default_rng(16)))[1].tobytes())
    with Segmenter(model) as segmenter:
        assert isinstance(segmenter, Predictor)
        assert segmenter.classes[0] == "background" and len(segmenter.palette) == len(segmenter.classes)
        info = segmenter.describe()
        assert info["sha256"] == sha256_file(model) and info["backend"] == "onnxruntime"
        (prediction,) = segmenter.predict([image])
        assert prediction.mask.shape == image.shape


def test_runtime_never_imports_the_data_layer():
    root = Path(__file__).resolve().parents[2] / "bcdeploy" / "runtime"
    offenders = [str(p) for p in root.rglob("*.py") if "bcdeploy.data" in p.read_text()]
    assert offenders == []
