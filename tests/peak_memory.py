"""Peak resident memory of one call, measured in a fresh interpreter (Linux only).

glibc's mmap threshold is pinned as a run pins it (runtime/run/memory.py), so freed arrays leave the
process; the peak (VmHWM) is reset through /proc/self/clear_refs after `setup` and read after `measured`.
What tests compare is the peak above the resident size just before `measured`, per pixel of the image.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

AVAILABLE = Path("/proc/self/clear_refs").exists()

_HARNESS = """
import sys
from bcdeploy.runtime.run.memory import return_large_blocks
return_large_blocks()
def kib(key):
    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith(key))
{setup}
try:
    open('/proc/self/clear_refs', 'w').write('5')
except OSError:
    print('SKIP'); sys.exit()
before = kib('VmRSS')
result = {measured}
print(repr(result)); print((kib('VmHWM') - before) * 1024)
"""


def peak_above_base(setup: str, measured: str) -> tuple[str, int]:
    """(repr of `measured`'s value, peak bytes above the base while it ran); skips where /proc cannot
    reset the peak. `setup` runs first (imports, inputs, a warm-up call), `measured` is one expression."""
    script = _HARNESS.format(setup=setup, measured=measured)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    if out == ["SKIP"]:
        pytest.skip("this kernel does not let a process reset its peak resident size")
    return out[0], int(out[1])
