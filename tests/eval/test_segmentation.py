import numpy as np
import pytest

from bcdeploy.eval.segmentation import ConfusionMatrix, dice_per_class

CLASSES = ["background", "benign", "malignant"]


def test_metrics_match_hand_computation():
    gt = np.array([[0, 0, 1, 1], [0, 0, 2, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 0]], np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(pred, gt)
    m = cm.metrics(CLASSES)
    # labelled pixels: 7; correct: bg 3 (of 4), benign 2 (of 2), malignant 0 (of 1)
    assert m["aAcc"] == pytest.approx(100 * 5 / 7, abs=1e-3)
    assert m["per_class"]["background"]["Acc"] == 75.0
    assert m["per_class"]["benign"]["Dice"] == pytest.approx(100 * 2 * 2 / (2 + 4), abs=1e-3)
    assert m["per_class"]["malignant"]["Dice"] == 0.0
    assert m["mDice_lesion"] == pytest.approx((100 * 4 / 6 + 0) / 2, abs=1e-3)
    assert m["mAcc"] == pytest.approx((75 + 100 + 0) / 3, abs=1e-3)


def test_absent_class_is_nan_and_skipped_in_means():
    cm = ConfusionMatrix(3)
    cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    m = cm.metrics(CLASSES)
    assert m["per_class"]["benign"]["Dice"] is None and m["mDice"] == 100.0 and m["mDice_lesion"] is None


def test_dice_per_class():
    a = np.array([0, 1, 1, 2])
    b = np.array([0, 1, 2, 2])
    assert dice_per_class(a, b, 4) == [1.0, 2 / 3, 2 / 3, None]
