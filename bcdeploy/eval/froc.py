"""Operating points measured, not guessed: FROC over CAD marks and the case-level ROC AUC, with bootstrap CIs.

A CAD mark is a predicted lesion (runtime/results/lesions.py: a connected component of a lesion class)
scored by its peak probability, the score the CAD SR reports as Certainty of Finding. A mark is a
true positive when it overlaps a ground-truth lesion not yet claimed by a higher-scoring mark (each
lesion is found once, by its best mark), else a false positive: the usual FROC scoring, where a
mark "on the lesion" counts. The curve is lesion sensitivity against false marks per image as the
threshold falls through the marks' scores; an operating point is the lowest threshold whose false
marks per image stay within a target, i.e. the most sensitive point at that rate.

The case-level AUC ranks images by their case score (the highest malignant-class probability): positives
are images holding a malignant ground-truth pixel, negatives every other image (benign and normal).

Intervals are percentile bootstrap intervals (images resampled with replacement, seeded, so a rerun
prints the same numbers): FROC and AUC vary far more across images than across lesions of one image.
A number resting on a handful of images is said with that count; it is never a validated figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
BOOTSTRAP = 1000


@dataclass
class ImageMarks:
    """One image's marks (score, index of the ground-truth lesion it hits or -1) and its lesion count."""

    scores: np.ndarray
    hits: np.ndarray
    lesions: int
    case_score: float | None = None
    malignant: bool = False


def marks_of(pred: np.ndarray, probs: np.ndarray) -> list[dict]:
    """The CAD marks of one prediction: each 8-connected component of a lesion class, scored as the
    runtime scores a lesion (runtime/results/lesions.py: the peak of its class's probability)."""
    import cv2

    marks = []
    for cls in range(1, probs.shape[0]):
        count, labels = cv2.connectedComponents((pred == cls).astype(np.uint8), connectivity=8)
        for k in range(1, count):
            pixels = labels == k
            marks.append({"class_index": cls, "score": float(probs[cls][pixels].max()), "pixels": pixels})
    return marks


def score_marks(marks: list[dict], gt: np.ndarray, *, malignant_index: int | None, ignore_index: int = 255,
                case_score: float | None = None) -> ImageMarks:
    """Match one image's marks to its ground-truth lesions (8-connected components of non-background,
    non-ignored pixels). A mark is a dict with its `score` and `pixels` (a boolean mask or index arrays
    of the predicted component)."""
    from bcdeploy.eval.lesions import ground_truth_lesions

    valid = gt != ignore_index
    count, labels = ground_truth_lesions(gt, ignore_index)
    order = sorted(range(len(marks)), key=lambda i: -float(marks[i].get("score") or 0.0))
    claimed: set[int] = set()
    scores, hits = [], []
    for i in order:
        mark = marks[i]
        touched = [int(v) for v in np.unique(labels[mark["pixels"]]) if v > 0 and v not in claimed]
        hit = touched[0] if touched else -1
        if hit > 0:
            claimed.add(hit)
        scores.append(float(mark.get("score") or 0.0))
        hits.append(hit)
    malignant = bool(malignant_index is not None and (gt[valid] == malignant_index).any())
    return ImageMarks(np.asarray(scores, float), np.asarray(hits, int), count - 1, case_score, malignant)


@dataclass
class Froc:
    """The FROC of a set of images: at each threshold, sensitivity and false marks per image."""

    images: Sequence[ImageMarks]
    thresholds: np.ndarray = field(init=False)
    sensitivity: np.ndarray = field(init=False)
    fp_per_image: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        scores = np.concatenate([m.scores for m in self.images]) if self.images else np.zeros(0)
        hits = np.concatenate([m.hits for m in self.images]) if self.images else np.zeros(0, int)
        total = sum(m.lesions for m in self.images)
        self.thresholds = np.unique(scores)[::-1]  # highest first: the curve grows as the threshold falls
        tp = np.array([((scores >= t) & (hits > 0)).sum() for t in self.thresholds], float)
        fp = np.array([((scores >= t) & (hits <= 0)).sum() for t in self.thresholds], float)
        self.sensitivity = tp / total if total else np.full(len(self.thresholds), np.nan)
        self.fp_per_image = fp / max(len(self.images), 1)

    def at(self, rate: float) -> tuple[float, float | None]:
        """(sensitivity, threshold) of the most sensitive point with at most `rate` false marks per image;
        (0.0, None) when even the highest-scoring mark exceeds it (or there are no marks)."""
        within = np.flatnonzero(self.fp_per_image <= rate)
        if not within.size:
            return 0.0, None
        best = within[-1]  # the lowest threshold still within the rate
        return float(self.sensitivity[best]), float(self.thresholds[best])


def case_auc(images: Sequence[ImageMarks]) -> float | None:
    """ROC AUC of case scores, malignant images against the others (Mann-Whitney, ties count half);
    None without both kinds of image."""
    scored = [m for m in images if m.case_score is not None]
    positive = np.array([m.case_score for m in scored if m.malignant], float)
    negative = np.array([m.case_score for m in scored if not m.malignant], float)
    if not positive.size or not negative.size:
        return None
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((greater + 0.5 * ties) / (positive.size * negative.size))


def summarise(images: Sequence[ImageMarks], *, target_fp: float | None = None, rates: Sequence[float] = FP_RATES,
              bootstrap: int = BOOTSTRAP, seed: int = 0) -> dict:
    """FROC points and case AUC with 95 % bootstrap intervals; with `target_fp`, the operating point
    (threshold) for it, and how many images and lesions every number rests on."""
    froc = Froc(images)
    rng = np.random.default_rng(seed)
    resampled = [[images[i] for i in rng.integers(0, len(images), len(images))] for _ in range(bootstrap)]
    curves = [Froc(sample) for sample in resampled]
    points = []
    for rate in rates:
        sensitivity, threshold = froc.at(rate)
        spread = [c.at(rate)[0] for c in curves if np.isfinite(c.at(rate)[0])]
        points.append({"fp_per_image": rate, "sensitivity": round(sensitivity, 4),
                       "ci95": _interval(spread), "threshold": threshold})
    aucs = [a for a in (case_auc(sample) for sample in resampled) if a is not None]
    auc = case_auc(images)
    result = {"images": len(images), "lesions": int(sum(m.lesions for m in images)),
              "marks": int(sum(len(m.scores) for m in images)), "froc": points,
              "case_auc": None if auc is None else round(auc, 4), "case_auc_ci95": _interval(aucs) if aucs else None,
              "malignant_images": int(sum(m.malignant for m in images)), "bootstrap": bootstrap}
    if target_fp is not None:
        sensitivity, threshold = froc.at(target_fp)
        result["operating_point"] = {"threshold": 1.0 if threshold is None else threshold, "fp_per_image": target_fp,
                                     "sensitivity": round(sensitivity, 4), "images": len(images)}
    return result


def _interval(values: Sequence[float]) -> list[float] | None:
    if not len(values):
        return None
    low, high = np.percentile(np.asarray(values, float), [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def format_lines(summary: dict) -> list[str]:
    """The terminal lines: FROC points and case AUC, each with its interval and what it rests on."""
    def ci(pair):
        return "n/a" if pair is None else f"{pair[0]:.2f}-{pair[1]:.2f}"

    points = ", ".join(f"{p['sensitivity']:.2f} @{p['fp_per_image']:g}" for p in summary["froc"])
    lines = [f"FROC (lesion sensitivity @ false marks/image, {summary['lesions']} lesions, {summary['marks']} marks, "
             f"{summary['images']} images): {points}",
             "  95% CI: " + ", ".join(f"@{p['fp_per_image']:g} {ci(p['ci95'])}" for p in summary["froc"])]
    auc = summary["case_auc"]
    lines.append(f"case AUC (malignant vs other images, {summary['malignant_images']} of {summary['images']} "
                 f"malignant): " + ("n/a (needs both kinds)" if auc is None else
                                    f"{auc:.3f} (95% CI {ci(summary['case_auc_ci95'])})"))
    point = summary.get("operating_point")
    if point:
        lines.append(f"CAD operating point: threshold {point['threshold']:.4f} at <= {point['fp_per_image']:g} false "
                     f"marks/image (sensitivity {point['sensitivity']:.2f}), measured on {point['images']} images"
                     + (" - too few to validate a threshold" if point["images"] < 100 else ""))
    return lines
