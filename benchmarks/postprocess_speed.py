"""Postprocess speed on a DMID-size output (4463x3162 from (3, 640, 640) logits with a few lesion-like
blobs): the full resize of every class plane + running argmax (bcdeploy before issue 15, kept as
`_logits_to_mask_full`) versus `logits_to_mask`'s fast path (argmax at model resolution, bilinear only
where classes meet). Contenders alternate within one run; the figure to quote is the same-run ratio of
best times. `CPU ms` is the process CPU time (cv2 may use several threads), which is what the
postprocess takes from inference running beside it. Also prints the pixel agreement of the masks.

    python benchmarks/postprocess_speed.py [--repeats 9] [--lesions 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bcdeploy.runtime.model.postprocess import _logits_to_mask_full, logits_to_mask
from bcdeploy.runtime.model.preprocess import PreprocessInfo

OUT_HW = (4463, 3162)
IN_HW = (640, 640)


def lesion_logits(lesions: int, seed: int = 0) -> np.ndarray:
    """Background confidently ahead (~+4) except in a few round/elliptic lesions of class 1 or 2,
    smooth like a trained decoder's output, with a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: IN_HW[0], : IN_HW[1]].astype(np.float32)
    logits = np.zeros((3, *IN_HW), np.float32)
    logits[0] = 4.0
    for i in range(lesions):
        cy, cx = rng.uniform(80, IN_HW[0] - 80), rng.uniform(80, IN_HW[1] - 80)
        ry, rx = rng.uniform(8, 60, size=2)
        bump = 10.0 * np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2))
        logits[1 + i % 2] += bump
        logits[0] -= 0.5 * bump
    return logits + 0.05 * rng.standard_normal(logits.shape).astype(np.float32)


def timed(fn) -> tuple[float, float, np.ndarray]:
    wall, cpu = time.perf_counter(), time.process_time()
    mask = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--lesions", type=int, default=4)
    args = parser.parse_args()
    logits = lesion_logits(args.lesions)
    info = PreprocessInfo(OUT_HW, IN_HW, IN_HW)
    contenders = {"full resize (before)": lambda: _logits_to_mask_full(logits, *OUT_HW),
                  "fast (logits_to_mask)": lambda: logits_to_mask(logits, info)}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    masks = {}
    for _ in range(args.repeats):
        for name, fn in contenders.items():
            wall, cpu, masks[name] = timed(fn)
            times[name].append((wall, cpu))
    before, after = masks.values()
    lesion_px = int((before > 0).sum())
    print(f"{OUT_HW[0]}x{OUT_HW[1]} from {IN_HW[0]}x{IN_HW[1]}, {args.lesions} lesions ({lesion_px} px), "
          f"{args.repeats} alternating repeats; agreement {100 * (before == after).mean():.5f} %")
    print(f"{'contender':24s} {'best ms':>8s} {'median ms':>10s} {'best CPU ms':>12s}")
    for name, runs in times.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{name:24s} {1e3 * min(walls):8.1f} {1e3 * statistics.median(walls):10.1f} {1e3 * min(cpus):12.1f}")
    (old, new), (old_cpu, new_cpu) = ([min(run[i] for run in runs) for runs in times.values()] for i in (0, 1))
    print(f"same-run ratio of best times: wall {old / new:.1f}x, CPU {old_cpu / new_cpu:.1f}x")

if __name__ == "__main__":
    main()
