"""What the reader fuzzer found (tests/fuzz/findings/), kept as regression tests: each file is a valid
image or one clear BcDeployError, never another exception, decoded in a process of its own whose peak
memory must stay under 1 GiB (its address space is capped at 8 GiB, so a file that makes a decoder
allocate far more fails the test, not the machine), and in bounded time (a file that makes a reader
loop fails too)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

FINDINGS = sorted((Path(__file__).parent / "findings").iterdir())
DECODE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # a safety net for the machine, not the test
from bcdeploy.errors import BcDeployError
from bcdeploy.runtime.images.imageio import decode_image
try:
    image = decode_image(open(sys.argv[1], "rb").read(), sys.argv[1], max_pixels=4_000_000)
    assert image.bgr.ndim == 3 and image.bgr.shape[2] == 3
    print("decoded:", image.bgr.shape)
except BcDeployError as err:
    print("refused:", err)
# VmHWM is this address space's peak (ru_maxrss would carry the parent's across fork and exec)
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("peak MiB", peak_kib // 1024)
"""


@pytest.mark.parametrize("finding", FINDINGS, ids=lambda p: p.name)
def test_a_fuzzer_finding_is_one_clear_error_in_bounded_memory(finding):
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", DECODE, str(finding)], capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start < 30, f"decoding {finding.name} took {time.monotonic() - start:.0f} s"
    assert done.returncode == 0 and done.stdout.startswith(("refused:", "decoded:")), done.stdout + done.stderr[-2000:]
    peak = int(done.stdout.rsplit("peak MiB", 1)[1])
    assert peak < 1024, f"decoding {finding.name} ({finding.stat().st_size} bytes) took {peak} MiB"
