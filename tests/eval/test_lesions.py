import numpy as np

from bcdeploy.eval.lesions import LesionMetrics

CLASSES = ["background", "benign", "malignant"]


def blank():
    return np.zeros((64, 64), np.uint8)


def test_detected_missed_swap_and_false_positive():
    gt, pred = blank(), blank()
    gt[5:15, 5:15] = 1  # benign, predicted exactly -> detected, right class
    pred[5:15, 5:15] = 1
    gt[30:40, 30:40] = 2  # malignant, predicted benign -> detected, class swap
    pred[30:40, 30:40] = 1
    gt[50:60, 5:15] = 1  # benign, nothing predicted -> missed
    pred[50:55, 50:55] = 2  # touches no lesion -> false positive
    metrics = LesionMetrics(CLASSES, iou_threshold=0.5)
    records = metrics.update(pred, gt, "img")
    assert [(r["gt_class"], r["detected"], r["pred_class"]) for r in records] == [
        ("benign", True, "benign"), ("malignant", True, "benign"), ("benign", False, None)]
    summary = metrics.summary()
    assert summary["gt_lesions"] == 3 and summary["detected"] == 2 and summary["missed"] == 1
    assert summary["detection_rate"] == round(2 / 3, 4)
    assert summary["false_positive_components"] == 1
    assert summary["class_confusion"]["malignant"] == {"benign": 1, "malignant": 0, "missed": 0}
    assert summary["class_confusion"]["benign"] == {"benign": 1, "malignant": 0, "missed": 1}
    assert summary["class_accuracy_detected"] == 0.5
    assert summary["per_lesion_dice_mean"] == round((1 + 1 + 0) / 3, 4)


def test_iou_threshold_decides_detection():
    gt, pred = blank(), blank()
    gt[10:30, 10:30] = 1
    pred[10:20, 10:30] = 1  # IoU 0.5
    strict, loose = LesionMetrics(CLASSES, iou_threshold=0.6), LesionMetrics(CLASSES, iou_threshold=0.4)
    assert not strict.update(pred, gt)[0]["detected"]
    assert loose.update(pred, gt)[0]["detected"]
    assert loose.lesions[0]["dice"] == round(2 * 200 / (400 + 200), 4)


def test_normal_images_scored_by_false_positives():
    metrics = LesionMetrics(CLASSES)
    metrics.update(blank(), blank(), "clean")
    noisy = blank()
    noisy[1:3, 1:3] = 2
    metrics.update(noisy, blank(), "noisy")
    summary = metrics.summary()
    assert summary["normal_images"] == {"count": 2, "with_false_positive": 1, "specificity": 0.5}
    assert summary["gt_lesions"] == 0 and summary["detection_rate"] is None
    assert summary["false_positives_per_image"] == 0.5


def test_ignored_pixels_count_nowhere_and_min_area_filters_specks():
    gt, pred = blank(), blank()
    gt[0:10, 0:10] = 255
    pred[0:10, 0:10] = 1  # under ignore: neither lesion nor false positive
    pred[40, 40] = 1  # one-pixel speck
    metrics = LesionMetrics(CLASSES, min_area=4)
    metrics.update(pred, gt)
    assert metrics.summary()["false_positive_components"] == 0
