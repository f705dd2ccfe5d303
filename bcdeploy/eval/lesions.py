"""Lesion-level metrics: what a pixel mean over mostly-background images hides.

A ground-truth lesion is an 8-connected component of non-background, non-ignored pixels; its class is
the majority class inside it. It is *detected* when the predicted lesion pixels overlapping it (the
union of every predicted component touching it) reach IoU >= `iou_threshold` with it. Its predicted
class is the majority predicted class inside it. A predicted component that touches no ground-truth
lesion is a *false positive*. Normal images (no ground-truth lesion) are scored by whether they get
any false positive, i.e. image-level specificity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def ground_truth_lesions(gt: np.ndarray, ignore_index: int = 255) -> tuple[int, np.ndarray]:
    """The ground-truth lesions as this module defines them: (count + 1, label image), label 0 for
    background and ignored pixels (cv2.connectedComponents' convention)."""
    import cv2

    return cv2.connectedComponents(((gt > 0) & (gt != ignore_index)).astype(np.uint8), connectivity=8)


@dataclass
class LesionMetrics:
    class_names: list[str]
    iou_threshold: float = 0.3
    min_area: int = 0
    ignore_index: int = 255
    lesions: list[dict] = field(default_factory=list)
    fp_per_image: list[int] = field(default_factory=list)
    normal_images: int = 0
    normal_with_fp: int = 0

    def update(self, pred: np.ndarray, gt: np.ndarray, image_id: str = "") -> list[dict]:
        """Score one image; returns its lesion records (also kept for the summary)."""
        import cv2

        valid = gt != self.ignore_index
        pred_lesion = ((pred > 0) & valid).astype(np.uint8)
        n_gt, gt_labels = ground_truth_lesions(gt, self.ignore_index)
        n_pred, pred_labels, pred_stats, _ = cv2.connectedComponentsWithStats(pred_lesion, connectivity=8)
        big = np.zeros(n_pred, bool)
        big[1:] = pred_stats[1:, cv2.CC_STAT_AREA] >= max(self.min_area, 1)
        touched = np.zeros(n_pred, bool)
        records = []
        for g in range(1, n_gt):
            region = gt_labels == g
            overlapping = np.unique(pred_labels[region])
            overlapping = overlapping[(overlapping > 0) & big[overlapping]]
            touched[overlapping] = True
            pred_region = np.isin(pred_labels, overlapping) if overlapping.size else np.zeros_like(region)
            inter = int((region & pred_region).sum())
            union = int((region | pred_region).sum())
            area, pred_area = int(region.sum()), int(pred_region.sum())
            iou = inter / union if union else 0.0
            gt_class = int(np.bincount(gt[region]).argmax())
            inside = pred[region & (pred > 0)]
            pred_class = int(np.bincount(inside).argmax()) if inside.size else 0
            detected = iou >= self.iou_threshold
            records.append({
                "image": image_id, "gt_class": self.class_names[gt_class], "area": area,
                "iou": round(iou, 4), "dice": round(2 * inter / (area + pred_area), 4),
                "detected": bool(detected), "pred_class": self.class_names[pred_class] if detected else None,
            })
        fp = int((big & ~touched).sum())
        self.lesions.extend(records)
        self.fp_per_image.append(fp)
        if n_gt == 1:
            self.normal_images += 1
            self.normal_with_fp += fp > 0
        return records

    def summary(self) -> dict:
        lesion_classes = self.class_names[1:]
        confusion = {g: {p: 0 for p in lesion_classes + ["missed"]} for g in lesion_classes}
        for rec in self.lesions:
            confusion[rec["gt_class"]][rec["pred_class"] or "missed"] += 1
        detected = [r for r in self.lesions if r["detected"]]
        n = len(self.lesions)
        images = len(self.fp_per_image)
        return {
            "iou_threshold": self.iou_threshold,
            "gt_lesions": n,
            "detected": len(detected),
            "missed": n - len(detected),
            "detection_rate": round(len(detected) / n, 4) if n else None,
            "per_lesion_dice_mean": round(float(np.mean([r["dice"] for r in self.lesions])), 4) if n else None,
            "per_lesion_dice_detected_mean": round(float(np.mean([r["dice"] for r in detected])), 4) if detected else None,
            "false_positive_components": int(sum(self.fp_per_image)),
            "false_positives_per_image": round(sum(self.fp_per_image) / images, 4) if images else None,
            "class_confusion": confusion,
            "class_accuracy_detected": (
                round(sum(r["pred_class"] == r["gt_class"] for r in detected) / len(detected), 4) if detected else None
            ),
            "normal_images": {
                "count": self.normal_images,
                "with_false_positive": self.normal_with_fp,
                "specificity": round(1 - self.normal_with_fp / self.normal_images, 4) if self.normal_images else None,
            },
        }
