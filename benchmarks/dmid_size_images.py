"""DMID-size mammograms for the end-to-end benchmark: `bcdeploy data synth` draws them, then each
is stored as DMID stores its images, an 8-bit RGBA TIFF with LZW compression (synth writes them
uncompressed), so decode time is what users see.

    python benchmarks/dmid_size_images.py OUT_DIR [--count 8] [--min-size 4300] [--max-size 4500]
Writes OUT_DIR/*.tif (and keeps the synth set in OUT_DIR.synth/).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from bcdeploy.data.synth import synthesize
from bcdeploy.fileio import atomic_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--min-size", type=int, default=4300)  # DMID: 2864x4432 and similar
    parser.add_argument("--max-size", type=int, default=4500)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    synth = args.out.with_name(args.out.name + ".synth")
    if not (synth / "Info.txt").is_file():
        synthesize(synth, count=args.count, min_size=args.min_size, max_size=args.max_size, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for src in sorted((synth / "TIFF Images").glob("*.tif")):
        rgba = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
        if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise SystemExit(f"{src}: expected 8-bit RGBA from synth, got {rgba.shape} {rgba.dtype}")
        with atomic_path(args.out / src.name) as tmp:
            cv2.imwrite(str(tmp), rgba, [cv2.IMWRITE_TIFF_COMPRESSION, 5])  # 5: LZW
        print(args.out / src.name, f"{rgba.shape[1]}x{rgba.shape[0]}")


if __name__ == "__main__":
    main()
