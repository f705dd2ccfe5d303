"""Pixel metrics from a confusion matrix, with MMSeg's IoUMetric definitions.

aAcc = correct / labelled pixels; per class Acc = TP / ground-truth pixels (recall),
Dice = 2 TP / (predicted + ground-truth pixels), IoU = TP / union; the means skip classes absent
from both prediction and ground truth (NaN), as MMSeg does. Pixels labelled `ignore_index` count
nowhere.
"""

from __future__ import annotations

import numpy as np


class ConfusionMatrix:
    """Accumulates a (num_classes x num_classes) matrix: rows ground truth, columns prediction."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
        keep = gt != self.ignore_index
        index = gt[keep].astype(np.int64) * self.num_classes + np.clip(pred[keep].astype(np.int64), 0, self.num_classes - 1)
        self.matrix += np.bincount(index, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)

    def metrics(self, class_names: list[str]) -> dict:
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        gt_count, pred_count = m.sum(1), m.sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = tp / gt_count
            dice = 2 * tp / (gt_count + pred_count)
            iou = tp / (gt_count + pred_count - tp)
        total = m.sum()
        per_class = {
            name: {"Dice": _pct(dice[i]), "Acc": _pct(acc[i]), "IoU": _pct(iou[i]), "pixels": int(gt_count[i])}
            for i, name in enumerate(class_names)
        }
        lesion = slice(1, None)
        return {
            "aAcc": _pct(tp.sum() / total) if total else None,
            "mDice": _pct(np.nanmean(dice)) if np.isfinite(dice).any() else None,
            "mAcc": _pct(np.nanmean(acc)) if np.isfinite(acc).any() else None,
            "mIoU": _pct(np.nanmean(iou)) if np.isfinite(iou).any() else None,
            # The original project's headline includes background, which dominates every pixel mean; these don't.
            "mDice_lesion": _pct(np.nanmean(dice[lesion])) if np.isfinite(dice[lesion]).any() else None,
            "mAcc_lesion": _pct(np.nanmean(acc[lesion])) if np.isfinite(acc[lesion]).any() else None,
            "per_class": per_class,
        }


def _pct(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value) * 100.0, 4)


def dice_per_class(pred: np.ndarray, ref: np.ndarray, num_classes: int) -> list[float | None]:
    """Dice of `pred` against `ref` for each class (None where both are empty), in [0, 1]."""
    out: list[float | None] = []
    for c in range(num_classes):
        p, r = pred == c, ref == c
        denom = int(p.sum()) + int(r.sum())
        out.append(None if denom == 0 else 2.0 * int((p & r).sum()) / denom)
    return out
