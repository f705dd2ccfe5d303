"""The 1x anchor of the end-to-end table: what an MMSeg user runs, as one process per directory.
`mmseg.apis.inference_model(model, path)` for every image (its own decode, resize, model, bilinear
upsampling of the logits to full size, argmax); nothing written.

    python benchmarks/mmseg_baseline.py --ckpt work_dir/iter_400.pth DIR [--config CFG]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--config")
    parser.add_argument("inputs", type=Path)
    args = parser.parse_args()
    import torch

    from bcdeploy.train.mmseg_compat import install
    from bcdeploy.train.model import build_segmentor, find_config

    install()  # mmcv-lite has no compiled ops: mmseg imports mmcv.ops only for point_sample
    from mmseg.apis import inference_model

    model = build_segmentor(find_config(args.ckpt, args.config), args.ckpt)
    paths = sorted(p for p in args.inputs.iterdir() if p.suffix.lower() in SUFFIXES)
    for path in paths:
        t0 = time.perf_counter()
        with torch.no_grad():
            mask = inference_model(model, str(path)).pred_sem_seg.data
        print(f"{path.name}: {tuple(mask.shape[-2:])} {time.perf_counter() - t0:.2f} s", flush=True)


if __name__ == "__main__":
    main()
