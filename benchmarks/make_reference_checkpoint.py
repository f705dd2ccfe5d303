"""Write a randomly initialised checkpoint of the reference model (UNet-S5-D16 + ASPP, 3 classes)
with its config beside it, in MMEngine's work_dir layout, so `bcdeploy export --ckpt` finds it.
Random weights are fine for latency; for parity they exercise the same graph as trained ones."""

import sys
from pathlib import Path

import torch

from bcdeploy.train.model import build_segmentor

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "unet" / "unet-s5-d16_deeplabv3_breast-cancer.py"

out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench_work/reference")
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
model = build_segmentor(CONFIG, None)
model.cfg.dump(str(out / CONFIG.name))  # the merged config, as MMEngine's Runner dumps it
torch.save({"state_dict": model.state_dict(), "meta": {}}, out / "iter_0.pth")
print(out / "iter_0.pth", f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
