"""Sizes in millimetres from pixel measures, where the image says its pixel spacing.

Kept apart from the DICOM reader (which only finds the spacing, runtime/images/dicom.py::pixel_spacing_mm):
a size is arithmetic on a lesion record, whatever format the spacing came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def lesion_size_mm(area_px: float, bbox_xywh: list[float] | tuple[float, ...], spacing_mm: list[float] | None,
                   scale: tuple[float, float] = (1.0, 1.0)) -> dict[str, Any]:
    """A lesion's area in mm² and bounding box [x, y, w, h] in mm from its pixel measures.

    `spacing_mm` is (row, col) of the ORIGINAL image; `scale` is original pixels per mask pixel as
    (rows, cols): 1.0 when the mask is at the original size, as bcdeploy writes it. Without spacing
    both are None (a mammogram without spacing must not get invented sizes).
    """
    if not spacing_mm:
        return {"area_mm2": None, "bbox_mm": None}
    dy, dx = spacing_mm[0] * scale[0], spacing_mm[1] * scale[1]
    x, y, w, h = bbox_xywh
    return {"area_mm2": round(float(area_px) * dy * dx, 3),
            "bbox_mm": [round(x * dx, 3), round(y * dy, 3), round(w * dx, 3), round(h * dy, 3)]}


def longest_diameter_mm(outline: list[list[float]], spacing_mm: list[float] | None,
                        scale: tuple[float, float] = (1.0, 1.0)) -> float | None:
    """The largest distance between two outline vertices in mm (rows and columns may differ in spacing,
    so the points are scaled before measuring); None without spacing."""
    if not spacing_mm or not outline:
        return None
    from bcdeploy.runtime.results.lesions import longest_distance

    points = np.asarray(outline, np.float64) * [spacing_mm[1] * scale[1], spacing_mm[0] * scale[0]]
    return round(longest_distance(points), 3)


def with_mm_sizes(lesions: list[dict[str, Any]], spacing_mm: list[float] | None,
                  scale: tuple[float, float] = (1.0, 1.0)) -> list[dict[str, Any]]:
    """Copies of lesion records (runtime.lesions.extract_lesions) with `area_mm2`, `bbox_mm` and
    `longest_diameter_mm` added (None where the image has no usable spacing)."""
    return [{**lesion, **lesion_size_mm(lesion["area_px"], lesion["bbox"], spacing_mm, scale),
             "longest_diameter_mm": longest_diameter_mm(lesion.get("outline") or [], spacing_mm, scale)}
            for lesion in lesions]


def closed_outline(lesion: dict[str, Any]) -> np.ndarray:
    """The outline's vertices at pixel centres in DICOM image coordinates (PS3.3 C.18.6.1.1: 0,0 is the
    top left corner of the top left pixel, so a centre is at +0.5), first vertex repeated last (a closed
    polyline), as the SR and the CAD SR draw it; a lesion too small for a polygon (under 3 vertices)
    is outlined by its bounding box."""
    points = [list(p) for p in lesion.get("outline") or []]
    if len(points) < 3:
        x, y, w, h = lesion["bbox"]
        points = [[x, y], [x + w - 1, y], [x + w - 1, y + h - 1], [x, y + h - 1]]
    return np.asarray([*points, points[0]], np.float64) + 0.5
