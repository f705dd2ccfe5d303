"""The write stage's encoders on a full-size DMID mask (2864x4432, a few lesions), contenders
alternating: OpenCV's PNG (the old writer) vs imagecodecs' libpng with each deflate level / row filter /
strategy worth trying, the biner PNG, and the overlay (downscale + contours + JPEG). Every PNG is
decoded again and must give the exact array. Chooses bcdeploy.runtime.results.outputs' PNG settings.

    python benchmarks/encode_bench.py [--rounds 5] [--out benchmarks/results/encode]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import imagecodecs
import numpy as np

from bcdeploy.bench.report import machine_line, write_report
from bcdeploy.bench.sysinfo import describe
from bcdeploy.runtime.results.outputs import encode, encode_opencv
from bcdeploy.runtime.results.drawing import biner, downscale, overlay

# libpng filter bits (png.h): one bit per row filter the encoder may pick among
FILTERS = {"none": 0x08, "sub": 0x10, "up": 0x20, "paeth": 0x80, "all": 0xF8}
Z_RLE = 3


def dmid_mask(h: int = 4432, w: int = 2864) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (900, 1800), 160, 1, -1)
    cv2.ellipse(mask, (1500, 2600), (260, 180), 30, 0, 360, 2, -1)
    cv2.circle(mask, (700, 3300), 60, 1, -1)
    return mask


def contenders(mask: np.ndarray, bgr: np.ndarray) -> dict:
    small = biner(mask, 3)
    lesions = [{"class": "benign", "bbox": [740, 1640, 320, 320]}, {"class": "malignant", "bbox": [1240, 2420, 520, 360]}]
    run = {
        "mask png opencv level 1 (before)": lambda: encode_opencv(mask, ".png"),
        "mask png opencv level 0": lambda: cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 0])[1].tobytes(),
        "mask png outputs.encode (after)": lambda: encode(mask, ".png"),
    }
    for level in (1, 3):
        for name in ("none", "sub", "up", "all"):
            run[f"mask png imagecodecs level {level} filter {name}"] = (
                lambda level=level, f=FILTERS[name]: imagecodecs.png_encode(mask, level=level, filter=f))
    run["mask png imagecodecs level 1 filter none rle"] = lambda: imagecodecs.png_encode(
        mask, level=1, filter=FILTERS["none"], strategy=Z_RLE)
    run["biner png opencv (before)"] = lambda: encode_opencv(small, ".png")
    run["biner png outputs.encode (after)"] = lambda: encode(small, ".png")
    palette, names = [[0, 0, 0], [0, 255, 0], [255, 0, 0]], ["background", "benign", "malignant"]
    size = (round(mask.shape[1] * 2048 / max(mask.shape)), 2048)
    run["overlay downscale INTER_AREA (before)"] = lambda: cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    run["overlay downscale 2x area steps + linear (after)"] = lambda: downscale(bgr, size)
    run["overlay whole (downscale + contours + JPEG, after)"] = lambda: encode(overlay(bgr, mask, palette, names, lesions), ".jpg")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    mask = dmid_mask()
    rng = np.random.default_rng(0)
    gray = cv2.GaussianBlur(rng.integers(0, 256, mask.shape, dtype=np.uint8), (0, 0), 8)
    bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    run = contenders(mask, bgr)
    sizes, times = {}, {name: [] for name in run}
    for name, fn in run.items():  # warm-up, and every PNG must decode to the exact array
        result = fn()
        data = result.tobytes() if isinstance(result, np.ndarray) else bytes(result)
        sizes[name] = len(data)
        if "png" in name:
            want = biner(mask, 3) if name.startswith("biner") else mask
            back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if not np.array_equal(back, want):
                raise SystemExit(f"{name}: decoded pixels differ")
    for _ in range(args.rounds):
        for name, fn in run.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1000)
    rows = [{"what": name, "best_ms": round(min(t), 1), "median_ms": round(statistics.median(t), 1),
             "worst_ms": round(max(t), 1), "bytes": sizes[name]} for name, t in times.items()]
    report = {"machine": describe(), "mask": list(mask.shape), "rounds": args.rounds, "rows": rows,
              "packages": {"imagecodecs": imagecodecs.__version__, "libpng": imagecodecs.png_version(),
                           "opencv": cv2.__version__}}
    write_report(args.out, report, markdown(report))


def markdown(report: dict) -> str:
    h, w = report["mask"]
    lines = [f"# Encoding a full-size {w}x{h} mask ({report['rounds']} alternating rounds)", "",
             machine_line(report["machine"]), "", "| what | best ms | median | worst | bytes |", "|---|---|---|---|---|"]
    lines += [f"| {r['what']} | {r['best_ms']} | {r['median_ms']} | {r['worst_ms']} | {r['bytes']:,} |" for r in report["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
