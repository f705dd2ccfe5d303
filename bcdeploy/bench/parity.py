"""`bcdeploy bench parity`: the same images through PyTorch/MMSeg (reference) and every backend.

Per backend: pixel agreement and per-class Dice against the reference masks ("same as PyTorch"),
pixel and lesion metrics against ground truth when labels exist ("as good as PyTorch"), and logit
statistics on identical preprocessed tensors. Gates turn it into a CI check.

Dice drop: with labels, how much the backend's mDice against ground truth falls below the
reference's (in Dice units, 0.01 = one point); without labels, 1 - mean Dice against the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bcdeploy.bench.models import ModelSpec, file_size_mb, open_segmenter, precision_of
from bcdeploy.bench.sysinfo import describe
from bcdeploy.eval.labels import read_label_png
from bcdeploy.eval.lesions import LesionMetrics
from bcdeploy.eval.segmentation import ConfusionMatrix, dice_per_class
from bcdeploy.runtime.images.imageio import read_image
from bcdeploy.runtime.model.preprocess import preprocess


def run_parity(checkpoint: str, specs: Sequence[ModelSpec], images: Sequence[Path], *, labels: str | None = None,
               config: str | None = None, min_agreement: float = 0.999, max_dice_drop: float = 0.01,
               on_progress: Callable[[str, int], None] | None = None) -> dict:
    import torch

    from bcdeploy.export.graph import prepare_for_export
    from bcdeploy.train.predict import TorchPredictor

    predictor = TorchPredictor(config, checkpoint)
    classes = predictor.classes
    decoded = [read_image(p) for p in images]
    gts = _labels(labels, images) if labels else None
    ref_masks = [pred.mask for pred in predictor.predict(decoded)]
    reference = {"model": "pytorch (mmseg inference_model)", "status": "ok", "precision": "fp32",
                 **_vs_ground_truth(ref_masks, gts, classes)}
    module = prepare_for_export(predictor.model)
    rows = []
    for spec in specs:
        rows.append(_backend_row(spec, decoded, ref_masks, gts, classes=classes, module=module, torch=torch,
                                    reference=reference))
        if on_progress:
            on_progress(spec.label, len(specs))
    for row in rows:
        if row["status"] == "ok":
            row["gate_failures"] = _gate(row, min_agreement, max_dice_drop)
            row["passed"] = not row["gate_failures"]
    return {"machine": describe(), "checkpoint": str(checkpoint), "images": [str(p) for p in images],
            "labels": labels, "classes": classes, "gates": {"min_agreement": min_agreement, "max_dice_drop": max_dice_drop},
            "reference": reference, "backends": rows,
            "passed": all(r.get("passed", True) for r in rows)}


def _labels(labels: str, images: Sequence[Path]) -> list[np.ndarray | None]:
    """Each image's label map, None where it has none; a label file that exists must read."""
    return [read_label_png(ann) if (ann := Path(labels) / f"{path.stem}.png").is_file() else None for path in images]


def _vs_ground_truth(masks, gts, classes) -> dict:
    if not gts or all(g is None for g in gts):
        return {}
    matrix, lesions = ConfusionMatrix(len(classes)), LesionMetrics(classes)
    for mask, gt in zip(masks, gts):
        if gt is not None and gt.shape == mask.shape:
            matrix.update(mask, gt)
            lesions.update(mask, gt)
    metrics = matrix.metrics(classes)
    return {"vs_ground_truth": {k: metrics[k] for k in ("aAcc", "mDice", "mAcc", "mDice_lesion", "per_class")},
            "lesion": lesions.summary()}


def _backend_row(spec: ModelSpec, decoded, ref_masks, gts, *, classes, module, torch, reference) -> dict:
    segmenter, reason = open_segmenter(spec)
    if segmenter is None:
        return {"model": spec.label, "status": f"skipped: {reason}"}
    with segmenter:
        masks = [segmenter.predict([img.bgr])[0].mask for img in decoded]
        logit_stats = _logit_stats(segmenter, decoded, module, torch) if segmenter.meta.output_kind == "logits" else None
        row = {"model": spec.label, "status": "ok", **segmenter.runner.describe(),
               "precision": precision_of(segmenter, spec), "size_mb": file_size_mb(spec.path)}
    agree = float(np.mean([(m == r).mean() for m, r in zip(masks, ref_masks)]))
    per_class = np.array([dice_per_class(m, r, len(classes)) for m, r in zip(masks, ref_masks)], dtype=float)
    dice_vs_ref = {name: (None if np.isnan(col).all() else round(float(np.nanmean(col)), 5))
                   for name, col in zip(classes, per_class.T.astype(float))}
    row.update({"agreement": round(agree, 6), "dice_vs_reference": dice_vs_ref, "logits": logit_stats,
                **_vs_ground_truth(masks, gts, classes)})
    present = [v for v in dice_vs_ref.values() if v is not None]
    if "vs_ground_truth" in row and reference.get("vs_ground_truth", {}).get("mDice") is not None:
        row["dice_drop"] = round((reference["vs_ground_truth"]["mDice"] - row["vs_ground_truth"]["mDice"]) / 100, 5)
    else:
        row["dice_drop"] = round(1 - float(np.mean(present)), 5) if present else 0.0
    return row


def _logit_stats(segmenter, decoded, module, torch) -> dict:
    diffs = []
    for image in decoded:
        chw, _ = preprocess(image.bgr, segmenter.meta)
        batch = chw[None]
        ours = segmenter.raw_logits(batch).astype(np.float32)
        with torch.no_grad():
            ref = module(torch.from_numpy(batch)).numpy()
        diffs.append(np.abs(ours - ref).ravel())
    d = np.concatenate(diffs)
    return {"max_abs": float(d.max()), "median_abs": float(np.median(d)), "mean_abs": float(d.mean())}


def _gate(row: dict, min_agreement: float, max_dice_drop: float) -> list[str]:
    failures = []
    if row["agreement"] < min_agreement:
        failures.append(f"agreement {100 * row['agreement']:.3f}% < {100 * min_agreement:.2f}%")
    if row["dice_drop"] > max_dice_drop:
        failures.append(f"Dice drop {row['dice_drop']:.4f} > {max_dice_drop}")
    return failures
