"""Decode speed of a DMID-size mammogram (2864x4432, 8-bit RGBA, LZW): OpenCV as MMSeg uses it versus
bcdeploy's reader (tifffile + imagecodecs, strips decoded on several threads, or OpenCV with one
worker or small strips), same pixels. `speed-up` is against bcdeploy before this change; `CPU ms` is
the process CPU time (both threads), which tells what decoding takes from inference running beside it.

The machines are shared and drift, so the contenders alternate within one run and the figure to
quote is the same-run ratio of best times; spread = (median - best) / best of each.

    python benchmarks/decode_speed.py [--repeats 9] [--layout opencv|tifffile]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
import tifffile

from bcdeploy.data.synth import render_case
from bcdeploy.runtime.images import imageio

HEIGHT, WIDTH = 4432, 2864


def dmid_like_tiff(layout: str) -> bytes:
    """A synthetic mammogram as DMID stores it: R=G=B, opaque alpha, LZW with the predictor."""
    _, gray, _ = render_case(7, 0, 1100, 1100)
    gray = cv2.resize(gray, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    if layout == "opencv":  # libtiff's default strips (8 KB: one row here), as many writers leave them
        return cv2.imencode(".tif", rgba, [cv2.IMWRITE_TIFF_COMPRESSION, 5])[1].tobytes()
    buf = io.BytesIO()
    tifffile.imwrite(buf, rgba, photometric="rgb", compression="lzw", predictor=True, extrasamples=["unassalpha"])
    return buf.getvalue()


def contenders(data: bytes) -> dict[str, Callable[[], np.ndarray]]:
    buf = np.frombuffer(data, np.uint8)

    def bcdeploy_before():  # bcdeploy before this change: IMREAD_UNCHANGED, then a strided alpha drop
        return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)[..., :3])

    def opencv_imread_color():  # MMSeg's LoadImageFromFile call
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)

    return {"bcdeploy before (OpenCV)": bcdeploy_before, "OpenCV IMREAD_COLOR (MMSeg)": opencv_imread_color,
            "bcdeploy, 1 worker": lambda: _with_workers(1, data),
            "bcdeploy, 2 workers": lambda: _with_workers(2, data)}


def _with_workers(workers: int, data: bytes) -> np.ndarray:
    saved, imageio.TIFF_DECODE_WORKERS = imageio.TIFF_DECODE_WORKERS, workers
    try:
        return imageio.decode_image(data, "bench.tif").bgr
    finally:
        imageio.TIFF_DECODE_WORKERS = saved


def cpu_flags() -> str:
    model, flags = "?", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"]
    return f"{model}; {os.cpu_count()} CPUs; flags: {' '.join(f for f in wanted if f in flags) or 'none of ' + str(wanted)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--layout", choices=["opencv", "tifffile"], default="opencv",
                        help="who wrote the TIFF (strip size differs)")
    args = parser.parse_args()
    data = dmid_like_tiff(args.layout)
    runs = contenders(data)
    reference = runs["OpenCV IMREAD_COLOR (MMSeg)"]()
    for name, run in runs.items():  # warm-up, and the pixels must be MMSeg's
        assert np.array_equal(run(), reference), f"{name}: pixels differ from OpenCV's"
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():  # alternate, so drift hits every contender alike
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append((time.perf_counter() - start) * 1000)
            cpu[name].append((time.process_time() - start_cpu) * 1000)
    print(cpu_flags())
    print(f"{WIDTH}x{HEIGHT} 8-bit RGBA LZW TIFF written by {args.layout}, {len(data) / 1e6:.1f} MB; "
          f"{args.repeats} alternating repeats; pixels identical to OpenCV's")
    base = min(wall["bcdeploy before (OpenCV)"])
    print(f"{'contender':30s} {'best ms':>8s} {'median':>8s} {'spread':>7s} {'speed-up':>8s} {'CPU ms':>7s}")
    for name, values in wall.items():
        best, median = min(values), statistics.median(values)
        print(f"{name:30s} {best:8.1f} {median:8.1f} {(median - best) / best:7.0%} {base / best:7.2f}x"
              f" {min(cpu[name]):7.1f}")


if __name__ == "__main__":
    main()
