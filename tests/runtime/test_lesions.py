"""Per-lesion records (runtime/results/lesions.py) are those of labelling the whole mask, whatever rectangle the
implementation labels: ids in raster order, areas, boxes, centroids and mean probabilities, on seeded
masks with lesions at the borders, touching each other, single pixels, and none."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bcdeploy.runtime.results.lesions import extract_lesions
from tests import peak_memory

CLASSES = ["background", "benign", "malignant"]


def whole_image_records(mask: np.ndarray, probs: np.ndarray | None) -> list[tuple]:
    """What labelling the whole image gives (the definition), as comparable tuples in id order."""
    out = []
    height, width = mask.shape
    for cls in (1, 2):
        count, labels, stats, centroids = cv2.connectedComponentsWithStats((mask == cls).astype(np.uint8), connectivity=8)
        for label in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[label])
            prob = None
            if probs is not None:
                ys, xs = np.nonzero(labels == label)
                py = (ys * probs.shape[1] // height).clip(0, probs.shape[1] - 1)
                px = (xs * probs.shape[2] // width).clip(0, probs.shape[2] - 1)
                values = probs[cls, py, px].astype(np.float64)
                prob = (round(float(values.mean()), 4), round(float(values.max()), 4))
            out.append((cls, area, [x, y, w, h], [round(float(centroids[label][0]), 1),
                                                  round(float(centroids[label][1]), 1)], prob))
    return out


def seeded_mask(seed: int, shape=(700, 500)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    for _ in range(rng.integers(0, 12)):
        cls = int(rng.integers(1, 3))
        center = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        cv2.circle(mask, center, int(rng.integers(1, 40)), cls, -1)
    for _ in range(rng.integers(0, 5)):  # single pixels, some on the border
        mask[int(rng.integers(0, shape[0])), int(rng.choice([0, shape[1] - 1, rng.integers(0, shape[1])]))] = rng.integers(1, 3)
    return mask


# Model resolutions below the image's (the usual case, as divisors and not), equal, and above it.
@pytest.mark.parametrize("seed,model_shape", [(seed, shape) for seed in range(12) for shape in
                                              [(70, 50), (333, 219), (700, 500), (1024, 999)][seed % 4:seed % 4 + 1]])
def test_records_equal_whole_image_labelling(seed: int, model_shape: tuple[int, int]) -> None:
    """Including each lesion's mean and peak probability, sampled per image pixel in the definition."""
    mask = seeded_mask(seed)
    rng = np.random.default_rng(100 + seed)
    probs = rng.random((3, *model_shape)).astype(np.float32)
    got = extract_lesions(mask, CLASSES, probs)
    want = whole_image_records(mask, probs)
    assert [(r["class_index"], r["area_px"], r["bbox"], r["centroid"], (r["mean_prob"], r["score"]))
            for r in got] == want
    assert [r["id"] for r in got] == list(range(1, len(want) + 1))


def test_empty_mask_and_lesion_filling_the_image() -> None:
    assert extract_lesions(np.zeros((40, 30), np.uint8), CLASSES) == []
    full = np.full((40, 30), 2, np.uint8)
    (record,) = extract_lesions(full, CLASSES)
    assert record["bbox"] == [0, 0, 30, 40] and record["area_px"] == 1200 and record["class"] == "malignant"


@pytest.mark.parametrize("seed,band_rows", [(3, 1), (5, 7), (8, 64)])
def test_probabilities_are_those_of_the_whole_table_whatever_the_band(seed: int, band_rows: int,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """_sample builds its summed-area table band by band: bands of one row, of a few and of many give
    the per-pixel definition's mean and peak, at model resolutions below and above the image's."""
    import bcdeploy.runtime.results.lesions as lesions

    monkeypatch.setattr(lesions, "_BAND_ROWS", band_rows)
    mask = seeded_mask(seed)
    cv2.circle(mask, (250, 350), 200, 2, -1)  # one lesion taller than every band
    for model_shape in [(70, 50), (333, 219), (1024, 999)]:
        probs = np.random.default_rng(seed).random((3, *model_shape)).astype(np.float32)
        got = extract_lesions(mask, CLASSES, probs)
        assert [(r["mean_prob"], r["score"]) for r in got] == [w[4] for w in whole_image_records(mask, probs)]


PEAK_SETUP = """
import numpy as np, cv2
from bcdeploy.runtime.results.lesions import extract_lesions
mask = np.zeros((4400, 3300), np.uint8)
cv2.ellipse(mask, (1650, 2000), (1500, 1900), 0, 0, 360, 2, -1)
rng = np.random.default_rng(0)
for _ in range(300):
    center = (int(rng.integers(0, 3300)), int(rng.integers(0, 4400)))
    cv2.circle(mask, center, int(rng.integers(1, 30)), int(rng.integers(1, 3)), -1)
probs = rng.random((3, 640, 640)).astype(np.float32)
extract_lesions(mask[:100, :100], ["background", "benign", "malignant"], probs)
"""


@pytest.mark.skipif(not peak_memory.AVAILABLE, reason="peak resident size is reset through Linux's /proc")
def test_writer_peak_memory_is_one_label_image_at_a_time() -> None:
    """The records of a 14.5-Mpx mask (a large malignant lesion, 300 small ones of both classes) take at
    most 7 bytes per pixel above the base: the label image (4), the class's 0/1 image (1) and OpenCV's
    working tables. Labelling the next class while the last one's labels were alive, and a whole-box
    summed-area table, took 10."""
    count, peak = peak_memory.peak_above_base(PEAK_SETUP, 'len(extract_lesions(mask, ["background", "benign", "malignant"], probs))')
    assert int(count) > 100
    assert peak / (4400 * 3300) <= 7.0, f"{peak / (4400 * 3300):.2f} bytes per pixel above the base"
