"""An input folder holding a FIFO or a link to a device under an image name: opening the FIFO waited
for a writer forever (the whole run hung) and /dev/zero would be read until memory ran out. Each must
be one failure line while the other images are segmented.

Run as a subprocess with a timeout, because the failure mode is a hang."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.redteam.conftest import write_png


def test_fifo_and_device_are_failure_lines_not_a_hang(tmp_path, tiny_model):
    images, out = tmp_path / "images", tmp_path / "out"
    write_png(images / "a.png")
    os.mkfifo(images / "pipe.png")
    os.symlink("/dev/zero", images / "zero.png")
    command = [sys.executable, "-m", "bcdeploy.cli", "infer", "--engine", str(tiny_model), str(images), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    failed = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if "not a regular file" in line]
    assert len(failed) == 2 and any("pipe.png" in f for f in failed) and any("zero.png" in f for f in failed), result
    assert (out / "masks" / "a.png").is_file()
