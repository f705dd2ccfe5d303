"""Files beside a model that anyone could have edited (issue 35 item 9): the speed record
`bcdeploy-speed.json` and the sidecar are read bounded, as regular files, and never followed into a
pipe or a device. A record that is not what `bench cpu` wrote is ignored with one line and the run goes
on; a sidecar that is not one is one error line. Real `bcdeploy infer` processes with a real model,
each under a timeout (a FIFO once hung `open`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bcdeploy.runtime.model.speed_record import RECORD_NAME


def _export(tiny_onnx: Path, folder: Path) -> Path:
    """The model and a second variant of the same export beside it (the speed record is read only where
    there is a choice to speak of)."""
    folder.mkdir(parents=True)
    for path in tiny_onnx.parent.iterdir():
        shutil.copy(path, folder / path.name)
        shutil.copy(path, folder / path.name.replace("model.", "model.int8.", 1))
    return folder / tiny_onnx.name


def _images(folder: Path) -> Path:
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    return folder


def _infer(model: Path, images: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bcdeploy.cli", "infer", "--model", str(model), str(images),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)


def _deep(path: Path) -> None:
    path.write_text("[" * 200_000 + "]" * 200_000)


def _huge(path: Path) -> None:
    path.write_text('{"format": "bcdeploy-speed", "entries": [' + ", ".join(["{}"] * 2_000_000) + "]}")


def _zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


@pytest.mark.parametrize("make", [_deep, _huge, _zero, _fifo], ids=["deep-nesting", "oversize", "dev-zero", "fifo"])
def test_a_speed_record_that_is_not_ours_is_ignored_with_one_line(tiny_onnx, tmp_path, make):
    model = _export(tiny_onnx, tmp_path / "export")
    make(model.parent / RECORD_NAME)
    done = _infer(model, _images(tmp_path / "in"), tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "processed 1" in done.stdout
    lines = [line for line in done.stderr.splitlines() if RECORD_NAME in line]
    assert len(lines) == 1 and "ignored" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("make", [_deep, _zero, _fifo], ids=["deep-nesting", "dev-zero", "fifo"])
def test_a_sidecar_that_is_not_one_is_one_error_line(tiny_onnx, tmp_path, make):
    model = _export(tiny_onnx, tmp_path / "export")
    sidecar = model.parent / "model.bcdeploy.json"
    sidecar.unlink()
    make(sidecar)
    done = _infer(model, _images(tmp_path / "in"), tmp_path / "out")
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and sidecar.name in errors[0] and "Traceback" not in done.stderr, done.stderr
