"""Large blocks go back to the system when freed, so a long run's resident memory stays flat.

glibc serves a request above its mmap threshold (128 KiB at start) with its own mapping, returned to the
system on free. But each time such a block is freed, glibc raises the threshold to that block's size
(up to 32 MiB on 64-bit), to save system calls in programs that reuse one big buffer. A directory run
allocates and frees full-size arrays of many sizes (a 14-Mpx mask 14 MiB, probabilities 5-10 MiB, label
images up to 45 MiB, decode buffers) on three threads: after the first images they come from the heap
arenas of the reader, main and writer threads, whose freed space fragments and stays resident. Measured
on 200 DMID-size images (OpenVINO INT8, default outputs): median RSS rose from 803 to 948 MiB over the run
with glibc's default, and stayed at 706-743 MiB (peak 976 instead of 1,104 MiB) with the threshold pinned
(benchmarks/memory_flat.py, one OpenVINO stream; benchmarks/results/cpu/memory_*.md hold the latest runs).

Pinning it (mallopt M_MMAP_THRESHOLD) also turns the dynamic adjustment off. It costs a map and an unmap
per large array (page faults on first touch): within the run-to-run spread of a directory run here.
Process-wide and glibc-only; elsewhere (musl, macOS, Windows) nothing changes.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import platform

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20  # arrays of a mammogram are 5-60 MiB; Python's own objects stay far below


@functools.cache
def return_large_blocks() -> bool:
    """Pin glibc's mmap threshold for this process (once); False where it cannot be set."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        ok = ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    except (OSError, AttributeError) as err:
        log.debug("mallopt not available: %s", err)
        return False
    return ok
