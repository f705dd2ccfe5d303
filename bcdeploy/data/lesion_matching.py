"""Match metadata rows (class, centre, radius) to connected components of a lesion mask.

DMID masks merge every lesion of an image into one 0/255 file, so a component's class must come
from the metadata row whose centre lies inside it. The y origin of those centres is undocumented
(MIAS, whose format DMID copies, counts y from the bottom), so we try both and let the data decide.

Masks are binarised before anything else (`binarize_mask`): DMID masks are 0/255, so a pixel is lesion
at >= 128 (`--mask-threshold`); a mask saved as JPEG or anti-aliased holds other values, and counting
every non-zero pixel turned one such speckled mask into 2,350 extra "lesions". Components
smaller than `--min-lesion-area` pixels (default 16, at the original resolution) are dropped: at
mammography pixel sizes (0.05-0.1 mm) that is an island under 0.4 mm across, smaller than any lesion
DMID outlines (masses and calcification clusters span millimetres) but larger than the 1-3 px islands
JPEG artefacts and anti-aliasing leave. Both are counted in the manifest.

Policy for what does not match, recorded in the manifest and never silent:
* a component hit by rows of both classes becomes malignant (the conservative label);
* a component no centre hits takes the class of the image's rows that matched no component
  (typically calcification clusters written without coordinates) when those agree, else the class
  of all the image's rows when those agree; otherwise it is set to 255 (ignored by the loss);
* a row whose centre hits no component is listed as unmatched (a lesion without mask).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bcdeploy.data.records import LesionRow

IGNORE_INDEX = 255
DEFAULT_MASK_THRESHOLD = 128
DEFAULT_MIN_LESION_AREA = 16


@dataclass(frozen=True)
class MaskStats:
    """What binarising a mask changed: for the manifest."""

    dropped_components: int
    dropped_pixels: int
    value_histogram: dict[str, int] | None  # value -> pixel count, only for masks not purely 0/255


def binarize_mask(mask: np.ndarray, threshold: int = DEFAULT_MASK_THRESHOLD,
                  min_area: int = DEFAULT_MIN_LESION_AREA) -> tuple[np.ndarray, MaskStats]:
    """(0/1 uint8 lesion mask, stats): pixels >= threshold, 8-connected components under min_area dropped."""
    import cv2

    counts = np.bincount(mask.ravel(), minlength=256)
    present = np.flatnonzero(counts)
    histogram = None if set(present.tolist()) <= {0, 255} else {str(v): int(counts[v]) for v in present}
    lesion = (mask >= threshold).astype(np.uint8)
    dropped = dropped_pixels = 0
    if min_area > 1 and lesion.any():
        count, labels, stats, _ = cv2.connectedComponentsWithStats(lesion, connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_area)
        small = small[small > 0]  # label 0 is the background
        if small.size:
            dropped, dropped_pixels = int(small.size), int(stats[small, cv2.CC_STAT_AREA].sum())
            keep = np.ones(count, np.uint8)
            keep[0] = keep[small] = 0  # background stays background
            lesion = keep[labels]
    return lesion, MaskStats(dropped, dropped_pixels, histogram)


@dataclass
class MatchResult:
    class_of_component: dict[int, str | None]  # component label -> 'B' | 'M' | None (ignored)
    unmatched_components: list[dict] = field(default_factory=list)
    unmatched_rows: list[dict] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)


def label_components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected components of mask > 0: (count incl. background, labels int32, stats)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    return count, labels, stats


def component_at(labels: np.ndarray, x: float, y: float, radius: float | None) -> int:
    """Label of the component at (x, y) counted from the top, with a small tolerance window.

    Centres in DMID are hand-placed, so a centre a few pixels off a thin spiculated component
    still belongs to it: we take the most common label within max(3 px, 10 % of the radius).
    """
    height, width = labels.shape
    xi, yi = int(round(x)), int(round(y))
    if not (0 <= xi < width and 0 <= yi < height):
        return 0
    if labels[yi, xi]:
        return int(labels[yi, xi])
    tol = int(max(3, 0.1 * (radius or 0)))
    window = labels[max(0, yi - tol):yi + tol + 1, max(0, xi - tol):xi + tol + 1]
    values = window[window > 0]
    return int(np.bincount(values).argmax()) if values.size else 0


def to_top(row: LesionRow, height: int, y_origin: str) -> float:
    return row.y if y_origin == "top" else (height - 1 - row.y)


def count_hits(rows: list[LesionRow], labels: np.ndarray) -> dict[str, int]:
    """How many centred rows land in a component under each y origin (the evidence for detection)."""
    height = labels.shape[0]
    hits = {"top": 0, "bottom": 0}
    for row in rows:
        if row.has_centre and not row.is_normal:
            for origin in hits:
                hits[origin] += component_at(labels, row.x, to_top(row, height, origin), row.radius) > 0
    return hits


def match_rows(rows: list[LesionRow], labels: np.ndarray, n_components: int, y_origin: str) -> MatchResult:
    height = labels.shape[0]
    hit_classes: dict[int, list[str]] = {}
    unmatched_rows: list[LesionRow] = []
    for row in rows:
        if row.is_normal:
            continue
        label = component_at(labels, row.x, to_top(row, height, y_origin), row.radius) if row.has_centre else 0
        if label:
            hit_classes.setdefault(label, []).append(row.severity)
        else:
            unmatched_rows.append(row)
    result = MatchResult(class_of_component={})
    fallback = _fallback_class(rows, unmatched_rows)
    for label in range(1, n_components):
        classes = hit_classes.get(label)
        if classes:
            chosen = "M" if "M" in classes else "B"
            if len(set(classes)) > 1:
                result.conflicts.append({"component": label, "classes": sorted(set(classes)), "chosen": chosen})
        else:
            chosen = fallback
            result.unmatched_components.append({"component": label, "assigned": chosen or "ignore"})
        result.class_of_component[label] = chosen
    result.unmatched_rows = [
        {"line": r.source_line, "abnormality": r.abnormality, "class": r.severity, "x": r.x, "y": r.y,
         "reason": "centre outside every component" if r.has_centre else "no coordinates"}
        for r in unmatched_rows
    ]
    return result


def _fallback_class(rows: list[LesionRow], unmatched_rows: list[LesionRow]) -> str | None:
    for candidates in (unmatched_rows, [r for r in rows if not r.is_normal]):
        classes = {r.severity for r in candidates}
        if len(classes) == 1:
            return classes.pop()
    return None
