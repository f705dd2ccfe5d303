"""Run a command and report its wall time and peak memory, summed over the whole process tree
(worker processes included, which `/usr/bin/time` does not add up).

    python benchmarks/peak_memory.py -- bcdeploy prepare ...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def tree_rss_bytes(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += children.get(pid, [])
    return total


def main() -> None:
    cmd = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_bytes(proc.pid))
        time.sleep(0.1)
    print(json.dumps({"command": " ".join(cmd), "exit_code": proc.returncode,
                      "seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(peak / 2**20)}),
          file=sys.stderr)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
