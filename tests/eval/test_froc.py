"""FROC and case AUC (bcdeploy/eval/froc.py) on constructed images whose answer is worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bcdeploy.eval.froc import Froc, ImageMarks, case_auc, marks_of, score_marks, summarise


def _gt(shape=(40, 40), lesions=()) -> np.ndarray:
    gt = np.zeros(shape, np.uint8)
    for (y, x, cls) in lesions:
        gt[y:y + 6, x:x + 6] = cls
    return gt


def _mark(score: float, y: int, x: int, shape=(40, 40)) -> dict:
    pixels = np.zeros(shape, bool)
    pixels[y:y + 4, x:x + 4] = True
    return {"score": score, "pixels": pixels}


def test_a_lesion_is_found_once_by_its_best_mark_and_other_marks_are_false():
    gt = _gt(lesions=[(5, 5, 2), (25, 25, 1)])
    marks = [_mark(0.9, 6, 6), _mark(0.4, 7, 7), _mark(0.7, 30, 5)]  # two on lesion 1, one on nothing
    image = score_marks(marks, gt, malignant_index=2)
    assert image.lesions == 2 and image.malignant
    assert sorted(zip(image.scores.tolist(), (image.hits > 0).tolist())) == [(0.4, False), (0.7, False), (0.9, True)]


def test_the_curve_and_its_operating_points():
    # image A: lesion hit at 0.9, false mark 0.6; image B: lesion hit at 0.5, false mark 0.8
    a = ImageMarks(np.array([0.9, 0.6]), np.array([1, -1]), 1)
    b = ImageMarks(np.array([0.8, 0.5]), np.array([-1, 1]), 1)
    froc = Froc([a, b])
    assert froc.thresholds.tolist() == [0.9, 0.8, 0.6, 0.5]
    assert froc.sensitivity.tolist() == [0.5, 0.5, 0.5, 1.0]
    assert froc.fp_per_image.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert froc.at(0.25) == (0.5, 0.9)  # no false mark allowed beyond a quarter per image
    assert froc.at(1.0) == (1.0, 0.5)  # the lowest threshold within one false mark per image
    assert Froc([ImageMarks(np.array([0.3]), np.array([-1]), 0)]).at(0.125) == (0.0, None)


def test_case_auc_is_the_probability_a_malignant_image_outranks_another():
    images = [ImageMarks(np.zeros(0), np.zeros(0, int), 0, s, m)
              for s, m in ((0.9, True), (0.4, True), (0.5, False), (0.1, False), (0.4, False))]
    # pairs (pos, neg): 0.9 beats all 3; 0.4 beats 0.1, ties 0.4, loses to 0.5 -> (3 + 1 + 0.5) / 6
    assert case_auc(images) == pytest.approx(4.5 / 6)
    assert case_auc(images[:2]) is None  # no negative image


def test_marks_are_scored_by_their_peak_probability():
    pred = np.zeros((20, 20), np.uint8)
    pred[2:6, 2:6] = 2
    probs = np.zeros((3, 20, 20), np.float32)
    probs[2, 2:6, 2:6] = 0.6
    probs[2, 3, 3] = 0.95
    probs[2, 10, 10] = 0.99  # outside any predicted component: no mark of its own
    marks = marks_of(pred, probs)
    assert len(marks) == 1 and marks[0]["score"] == pytest.approx(0.95) and marks[0]["pixels"].sum() == 16


def test_bootstrap_intervals_hold_the_point_estimate_and_a_rerun_repeats_them():
    rng = np.random.default_rng(3)
    images = []
    for _ in range(30):
        n = int(rng.integers(0, 4))
        hits = np.where(rng.random(n) < 0.5, 1, -1)
        images.append(ImageMarks(rng.random(n), hits, int((hits > 0).sum()) + int(rng.integers(0, 2)),
                                 float(rng.random()), bool(rng.random() < 0.4)))
    first = summarise(images, target_fp=1.0, bootstrap=200)
    assert first == summarise(images, target_fp=1.0, bootstrap=200)
    for point in first["froc"]:
        low, high = point["ci95"]
        assert low <= point["sensitivity"] <= high
    low, high = first["case_auc_ci95"]
    assert low <= first["case_auc"] <= high
    assert first["operating_point"]["images"] == 30
