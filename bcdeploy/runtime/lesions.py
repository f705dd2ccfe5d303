"""Per-lesion records from a predicted class mask: what a report to a clinician lists."""

from __future__ import annotations

import numpy as np


def extract_lesions(mask: np.ndarray, class_names: list[str], probs: np.ndarray | None = None,
                    min_area: int = 1) -> list[dict]:
    """Connected components (8-connected) of each lesion class -> class, area, bbox, centroid.

    `probs` (C,h,w) are softmax probabilities at model resolution (cropped of padding); a lesion's
    mean probability is sampled there at its pixels' positions, which avoids a full-size softmax.
    """
    import cv2

    records = []
    height, width = mask.shape
    for cls in range(1, len(class_names)):
        binary = (mask == cls).astype(np.uint8)
        if not binary.any():
            continue
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
        for label in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[label])
            if area < min_area:
                continue
            record = {"class": class_names[cls], "class_index": cls, "area_px": area, "bbox": [x, y, w, h],
                      "centroid": [round(float(centroids[label][0]), 1), round(float(centroids[label][1]), 1)]}
            if probs is not None:
                ys, xs = np.nonzero(labels[y:y + h, x:x + w] == label)
                py = ((ys + y) * probs.shape[1] // height).clip(0, probs.shape[1] - 1)
                px = ((xs + x) * probs.shape[2] // width).clip(0, probs.shape[2] - 1)
                record["mean_prob"] = round(float(probs[cls, py, px].mean()), 4)
            records.append(record)
    for i, record in enumerate(records, 1):
        record["id"] = i
    return records
