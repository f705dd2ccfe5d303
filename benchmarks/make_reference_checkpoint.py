"""Train the reference architecture (UNet-S5-D16 + ASPP, configs/unet/unet-s5-d16_deeplabv3_breast-cancer.py)
briefly on generated DMID-like data, so benchmarks run on a model whose masks look like a trained
model's (few false lesions) and not on random weights (50-134 false lesions per image, which tripled
the write stage and measured nothing users see).

Everything goes through the public commands: `bcdeploy data synth`, `bcdeploy prepare --resize-ratio`,
`bcdeploy train CONFIG --cfg-options ...`, `bcdeploy test`. The architecture and the test pipeline
(640x640 whole-image) stay the reference config's, so the exported graph is the reference graph; only
the training recipe is overridden to fit ~10-15 CPU minutes:
  - images resized to 640x640 as at test time, then random 160x160 crops (lesions keep the scale they
    have at inference, each step costs 1/16 of a full 640x640 one);
  - class-weighted cross-entropy and AdamW: MMSeg's Dice loss pulls a short
    schedule to all-background (see configs/unet/unet-tiny_deeplabv3_breast-cancer.py).

Usage (the CPU run, ~13 min of training on 2 idle cores; --iters 60 gives a smoke version):
    python benchmarks/make_reference_checkpoint.py bench_work/reference [--iters 400] [--crop 160] [--batch 4]
On a CUDA machine (training uses the GPU when there is one; ~3 min on an H100, 16 cores):
    python benchmarks/make_reference_checkpoint.py bench_work/reference --iters 2000 --batch 8 --workers 6 --device cuda
What they reached on the 9-image validation split at 640x640 (6 lesions, 4 normal images):
    400 x 4:  mDice 36.6, lesions 3/6 detected, 4.1 false-positive components per image
    2000 x 8: mDice 55.6, lesions 4/6 detected, 3.3 false-positive components per image
(random weights: 50-134 false lesions per image). An existing OUT/work_dir/iter_N.pth is reused.
Writes OUT/work_dir/iter_N.pth (+ the dumped config, so `bcdeploy export --ckpt` finds it), OUT/test/
(`bcdeploy test` metrics at 640x640 on the validation split) and OUT/reference_checkpoint.json with what
the model reaches: Dice, lesions detected, false-positive components per image. Prints the checkpoint path last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bcdeploy.fileio import write_json

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "unet" / "unet-s5-d16_deeplabv3_breast-cancer.py"
SYNTH = {"count": 48, "min_size": 1200, "max_size": 1500, "seed": 11}
RESIZE_RATIO = 0.5  # 1200-1500 px synthetic mammograms -> 600-750 px, close to the 640 px the model sees
CLASS_WEIGHT = [0.03, 1.0, 1.0]  # background : benign : malignant, as the tiny config


def bcdeploy(*args, log: Path | None = None) -> None:
    cmd = [sys.executable, "-m", "bcdeploy.cli", *map(str, args)]
    print("+ bcdeploy", " ".join(map(str, args)), flush=True)
    with open(log, "w") if log else open(os.devnull, "w") as sink:
        proc = subprocess.run(cmd, stdout=sink if log else None, stderr=subprocess.STDOUT if log else None)
    if proc.returncode != 0:
        tail = log.read_text()[-3000:] if log else ""
        sys.exit(f"bcdeploy {args[0]} failed ({proc.returncode}){': ' + tail if tail else ''}")


def cfg_options(crop: int, batch: int, lr: float, workers: int) -> list[str]:
    """--cfg-options that change the training recipe only (architecture and test pipeline untouched)."""
    # bcdeploy's WeightedCrossEntropyLoss (bcdeploy.train.losses, imported through custom_imports): MMSeg's
    # own CE with class weights crashes on ignored pixels, which `prepare` writes (255) for lesions it
    # cannot match to one class, and the generated data set has some.
    loss = [{"type": "WeightedCrossEntropyLoss", "loss_name": "loss_ce", "class_weight": CLASS_WEIGHT,
             "loss_weight": w} for w in (1.0, 0.4)]
    pipeline = [{"type": "LoadImageFromFile"}, {"type": "LoadAnnotations"},
                {"type": "Resize", "scale": (640, 640), "keep_ratio": False},
                {"type": "RandomCrop", "crop_size": (crop, crop), "cat_max_ratio": 0.75},
                {"type": "RandomFlip", "prob": 0.5}, {"type": "PackSegInputs"}]
    options = {
        "custom_imports": {"imports": ["bcdeploy.train.dataset", "bcdeploy.train.losses"], "allow_failed_imports": False},
        "model.decode_head.loss_decode": [loss[0]],
        "model.auxiliary_head.loss_decode": [loss[1]],
        "model.data_preprocessor.size": (crop, crop),  # training pads to this; test-time padding is unchanged
        "train_dataloader.batch_size": batch,
        "train_dataloader.num_workers": workers,
        "train_dataloader.dataset.pipeline": pipeline,
        # no validation inside training: `bcdeploy test` below evaluates the checkpoint once
        "val_cfg": None, "val_dataloader": None, "val_evaluator": None,
        "test_dataloader.num_workers": 1,
        "optim_wrapper.optimizer": {"_delete_": True, "type": "AdamW", "lr": lr, "weight_decay": 0.01},
        "default_hooks.logger.interval": 10,
    }
    return [arg for key, value in options.items() for arg in ("--cfg-options", f"{key}={value!r}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="bench_work/reference", type=Path)
    parser.add_argument("--iters", type=int, default=400, help="training iterations (60: smoke run)")
    parser.add_argument("--crop", type=int, default=160, help="training crop side at the 640x640 scale")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--workers", type=int, default=1, help="data loader processes (2 cores: 1)")
    parser.add_argument("--device", default="cpu", help="for `bcdeploy test` (training uses CUDA when present)")
    args = parser.parse_args()
    out: Path = args.out
    data, prepared, work = out / "dmid", out / "prepared", out / "work_dir"
    start = time.perf_counter()
    if not (data / "Info.txt").is_file():
        bcdeploy("data", "synth", "--out", data, "--count", SYNTH["count"], "--min-size", SYNTH["min_size"],
                 "--max-size", SYNTH["max_size"], "--seed", SYNTH["seed"])
    if not (prepared / "manifest.json").is_file():
        bcdeploy("prepare", "--images-dir", data / "TIFF Images", "--masks-dir", data / "ROI Masks",
                 "--metadata", data / "Info.txt", "--output-dir", prepared, "--resize-ratio", RESIZE_RATIO)
    ckpt = work / f"iter_{args.iters}.pth"
    if ckpt.is_file():  # e.g. trained on a GPU with the same command; delete it to retrain
        print(f"{ckpt} exists: not training again")
    else:
        bcdeploy("train", CONFIG, "--data-root", prepared, "--work-dir", work, "--max-iters", args.iters,
                 *cfg_options(args.crop, args.batch, args.lr, args.workers), log=out / "train.log")
    train_s = time.perf_counter() - start
    bcdeploy("test", work / CONFIG.name, ckpt, "--data-root", prepared, "--out", out / "test",
             "--device", args.device, log=out / "test.log")
    metrics = json.loads((out / "test" / "metrics.json").read_text())
    summary = {"checkpoint": str(ckpt), "config": str(CONFIG.relative_to(ROOT)), "iterations": args.iters,
               "crop": args.crop, "batch": args.batch, "lr": args.lr, "synth": SYNTH, "resize_ratio": RESIZE_RATIO,
               "seconds": {"synth_prepare_train": round(train_s, 1), "total": round(time.perf_counter() - start, 1)},
               "mDice": metrics.get("mDice"), "mDice_lesion": metrics.get("mDice_lesion"), "lesion": metrics.get("lesion")}
    write_json(out / "reference_checkpoint.json", summary)
    les = metrics.get("lesion") or {}
    print(f"reference checkpoint after {args.iters} iterations ({summary['seconds']['total']:.0f} s): "
          f"mDice {metrics.get('mDice')}, lesions {les.get('detected')}/{les.get('gt_lesions')} detected, "
          f"{les.get('false_positives_per_image')} false-positive components per image "
          f"(validation split at 640x640)")
    print(ckpt)


if __name__ == "__main__":
    main()
