"""By default a command's stderr holds bcdeploy's lines only; --verbose / BCDEPLOY_VERBOSE=1 brings the
libraries' own lines back. Real subprocesses: libpng and OpenCV print from C to file descriptor 2,
which no in-process runner can see.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from tests.conftest import TINY_CONFIG
from tests.runtime import hostile_images as hostile
from tests.tiny_models import description, write_onnx

# OpenCV, libpng, Python warnings, onnxruntime's C++ log ("[W:onnxruntime:..."), absl/gRPC, libtiff
LIBRARY_LINE = re.compile(r"\[ ?(WARN|ERROR|INFO):|libpng|Warning:|warnings\.warn|\[[EWI]:onnxruntime|absl::|"
                          r"TIFFRead|TIFFFetch")


def bcdeploy(*args, verbose_env: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONWARNINGS", "OPENCV_LOG_LEVEL", "BCDEPLOY_VERBOSE")}
    if verbose_env:
        env["BCDEPLOY_VERBOSE"] = "1"
    return subprocess.run([sys.executable, "-m", "bcdeploy.cli", *map(str, args)], capture_output=True, text=True,
                          env={**env, "OMP_NUM_THREADS": "1"}, timeout=300)


def library_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if LIBRARY_LINE.search(line)]


@pytest.mark.slow
def test_infer_on_files_the_decoders_complain_about(tmp_path):
    pytest.importorskip("onnxruntime")
    model = write_onnx(tmp_path / "tiny.onnx", embedded=description(mean=[0.0] * 3, std=[1.0] * 3, input_size=[64, 64]))
    corrupt = hostile.corrupt_png(tmp_path / "corrupt.png")  # libpng: "libpng error: IDAT: ..."
    pixels = np.random.default_rng(1).integers(0, 256, (480, 640), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "whole.tif", pixels, compression="lzw")
    data = (tmp_path / "whole.tif").read_bytes()
    truncated = tmp_path / "truncated.tif"  # OpenCV: "[ WARN:0@...]" and "[ERROR:0@...]"
    truncated.write_bytes(data[: len(data) // 2])
    args = ["infer", "--engine", model, corrupt, truncated, "--out", tmp_path / "out"]

    quiet = bcdeploy(*args)
    assert library_lines(quiet.stderr) == [], quiet.stderr
    assert "Traceback" not in quiet.stderr and str(corrupt) in quiet.stderr and str(truncated) in quiet.stderr

    for loud in (bcdeploy("--verbose", *args), bcdeploy(*args, verbose_env=True)):
        shown = "\n".join(library_lines(loud.stderr))
        assert "libpng error" in shown and "[ WARN" in shown and "[ERROR" in shown, loud.stderr


@pytest.mark.mmseg
@pytest.mark.slow
def test_torch_command_hides_mmcv_warnings_unless_verbose(tmp_path):
    pytest.importorskip("mmseg")
    image = tmp_path / "a.png"
    image.write_bytes(hostile.corrupt_png(tmp_path / "b.png").read_bytes())
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not a checkpoint")
    args = ["predict", "--config", TINY_CONFIG, "--ckpt", bogus, image, "--out", tmp_path / "out"]

    quiet = bcdeploy(*args)
    assert quiet.returncode == 1 and quiet.stderr.startswith("error: ") and quiet.stderr.count("\n") == 1, quiet.stderr

    loud = bcdeploy(*args, verbose_env=True)
    assert loud.returncode == 1 and "UserWarning" in loud.stderr and "mmcv" in loud.stderr
