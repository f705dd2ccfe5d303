"""`bcdeploy bench timeline OUT_DIR`: the Gantt chart of a real `bcdeploy infer` run, read from its ledger
without changing, creating or locking anything in the run folder."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from bcdeploy.runtime.run.ledger import STAGES, Ledger
from tests.conftest import run_cli
from tests.runtime.test_run_spans import write_images, write_v1_ledger

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below `folder` (hidden ones too: the lock, -wal, -shm) by name, with its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run_folder(tiny_onnx, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    run_cli("infer", "--model", tiny_onnx, write_images(root / "in"), "--out", root / "out")
    return root / "out"


def test_timeline_draws_the_run_and_leaves_its_folder_as_it_was(run_folder, tmp_path):
    before = snapshot(run_folder)
    png = tmp_path / "plots" / "timeline.png"
    result = run_cli("bench", "timeline", run_folder, "--png", png)
    assert snapshot(run_folder) == before
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    report = json.loads(png.with_suffix(".json").read_text())
    assert list(report["stage_ms"]) == list(STAGES)
    assert all(s["images"] == 4 and s["median"] >= 0 for s in report["stage_ms"].values())
    assert report["run"] == 1 and report["images"] == 4 and report["images_per_s"] > 0
    assert set(report["threads"]) == {"decode", "segment", "write"}
    assert all(0 <= r["share"] <= 1 for r in [*report["rows"].values(), *report["threads"].values()])
    assert "images/s" in result.stdout and str(png) in result.stdout


def test_timeline_reads_a_folder_a_run_holds_open(run_folder, tmp_path):
    """A run in progress holds the lock and its -wal/-shm files: the timeline neither waits nor touches them."""
    run_folder = Path(shutil.copytree(run_folder, tmp_path / "out"))
    ledger = Ledger(run_folder)
    try:
        ledger.add_failure(ledger.begin_run({}), "x", "a row only in the -wal file")
        before = snapshot(run_folder)
        assert any(name.endswith("-wal") for name in before)
        result = run_cli("bench", "timeline", run_folder, "--run", "1", "--png", tmp_path / "t.png")
        assert snapshot(run_folder) == before and (tmp_path / "t.png").stat().st_size > 10_000
        last = run_cli("bench", "timeline", run_folder, "--png", tmp_path / "t2.png", check=False)
        assert last.returncode == 1 and "run 2 recorded no stage spans" in last.stderr, result.stdout
    finally:
        ledger.close()


def test_a_version_1_ledger_gives_one_error_line(tmp_path):
    write_v1_ledger(tmp_path / "old")
    before = snapshot(tmp_path / "old")
    result = run_cli("bench", "timeline", tmp_path / "old", "--png", tmp_path / "t.png", check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ") and "no stage spans" in result.stderr
    assert snapshot(tmp_path / "old") == before and not (tmp_path / "t.png").exists()


@pytest.mark.parametrize("what", ["empty", "missing"])
def test_a_folder_without_a_ledger_is_one_error_line(tmp_path, what):
    folder = tmp_path / "runs"
    if what == "empty":
        folder.mkdir()
    result = run_cli("bench", "timeline", folder, "--png", tmp_path / "t.png", check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ") and "no run ledger" in result.stderr
    assert (list(folder.iterdir()) == []) if what == "empty" else not folder.exists()
    assert not (tmp_path / "t.png").exists()


def test_the_plot_is_never_written_into_the_run_folder(run_folder):
    before = snapshot(run_folder)
    result = run_cli("bench", "timeline", run_folder, "--png", run_folder / "timeline.png", check=False)
    assert result.returncode == 1 and result.stderr.startswith("error: --png")
    assert snapshot(run_folder) == before
