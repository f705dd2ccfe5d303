"""A long directory run's memory stays flat: large blocks go back to the system when freed.

glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB), so after the
first images every full-size mask, probability map and label image (1-45 MiB each) is carved from the
heap arenas of the reader, main and writer threads, where freed space fragments and stays resident: a
200-image run grew from 803 to 948 MiB median (benchmarks/memory_flat.py, one OpenVINO stream, before
the fix). The run pins the threshold (runtime/run/memory.py); measured with the same benchmark: flat, peak
976 instead of 1,104 MiB. This checks the mechanism in a real `infer` process: after the run, a freed
4 MiB block is still served by mmap (glibc's own counters, mallinfo2), not parked in a heap. And a decoded
TIFF leaves nothing large to the cycle collector (its file's bytes were kept until a collection: a saw-tooth
of ~100 MiB; 200 images, OpenVINO INT8 masks only: peak 956 -> 583 MiB).
"""

from __future__ import annotations

import ctypes.util
import gc
import platform
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = """
import ctypes, sys
from click.testing import CliRunner
from bcdeploy.cli import cli

result = CliRunner().invoke(cli, ["infer", "--model", sys.argv[1], sys.argv[2], "--out", sys.argv[3]])
assert result.exit_code == 0, result.output

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 4 << 20
for _ in range(3):  # each free of an mmapped block is what raises glibc's dynamic threshold
    block = libc.malloc(size)
    mapped = libc.mallinfo2().hblkhd
    libc.free(block)
    print(mapped >= size)
"""


@pytest.mark.skipif(platform.system() != "Linux" or "glibc" not in " ".join(platform.libc_ver()),
                    reason="glibc's allocator only")
def test_large_blocks_stay_mapped_after_a_run(threshold_onnx, tmp_path):
    import cv2
    import numpy as np

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (900, 700), np.uint8))
    assert ctypes.util.find_library("c")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(threshold_onnx), str(image), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True"]


@pytest.mark.parametrize("compression", [None, "lzw", "deflate"])
def test_decoding_a_tiff_leaves_no_reference_to_its_bytes(compression: str | None) -> None:
    """tifffile's file, pages and tags form reference cycles that only the cycle collector frees; the
    file's bytes must not hang on them (they did: 17 MiB more resident per DMID image until a
    collection, a saw-tooth of ~100 MiB over a run). Counted with the collector off."""
    import io

    import tifffile

    from bcdeploy.runtime.images.imageio import decode_image

    pixels = (np.random.default_rng(0).random((300, 200, 4)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels, photometric="rgb", compression=compression)
    data = buffer.getvalue()
    gc.disable()
    try:
        before = sys.getrefcount(data)
        image = decode_image(data, "scan.tif")
        assert image.shape[:2] == (300, 200)
        del image
        assert sys.getrefcount(data) == before
    finally:
        gc.enable()
