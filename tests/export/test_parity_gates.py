"""The gates and the artifact table on arrays: what a full export would show, without exporting."""

from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import numpy as np
import pytest

from bcdeploy.errors import ParityError
from bcdeploy.export.artifacts import Artifact, ExportResult
from bcdeploy.export.parity import FP16_TOLERANCES, INT8_TOLERANCES, Tolerances, compare, require_parity
from bcdeploy.runtime.model.sidecar import ModelMeta

META = ModelMeta(classes=["background", "benign", "malignant"], palette=[[0, 0, 0], [0, 255, 0], [255, 0, 0]],
                 mean=[1.0, 2.0, 3.0], std=[1.0, 1.0, 1.0], input_size=[64, 64])


def _labels(seed=0, shape=(1, 1, 100, 100)):
    return np.random.default_rng(seed).integers(0, 3, shape).astype(np.uint8)


def _flip(labels, fraction):
    """Change the first `fraction` of pixels to another class."""
    out = labels.copy()
    flat = out.reshape(-1)
    n = int(round(fraction * flat.size))
    flat[:n] = (flat[:n] + 1) % 3
    return out


@pytest.mark.parametrize("tolerances, name", [(INT8_TOLERANCES, "int8"), (FP16_TOLERANCES, "fp16")])
def test_agreement_gate_is_inclusive_and_fails_just_below(tolerances, name):
    batch = np.zeros((1, 3, 100, 100), np.float32)
    labels = _labels()
    reference = lambda b: labels  # noqa: E731
    at_gate = 1 - tolerances.min_agreement
    ok = compare(reference, lambda b: _flip(labels, at_gate), [batch], "argmax", replace(tolerances, max_dice_drop=1.0))
    assert ok.passed and ok.rows[0].agreement == pytest.approx(tolerances.min_agreement)
    below = compare(reference, lambda b: _flip(labels, at_gate + 0.0001), [batch], "argmax",
                    replace(tolerances, max_dice_drop=1.0))
    assert not below.passed and "agreement" in below.rows[0].failures[0]
    with pytest.raises(ParityError, match=f"onnxruntime {name} disagrees with pytorch"):
        require_parity(replace(below, candidate=f"onnxruntime {name}"))


def test_dice_gate_catches_a_lost_small_class_that_agreement_misses():
    """99.5 % of pixels agree, but the only lesion is gone: the Dice gate fails it."""
    batch = np.zeros((1, 3, 100, 100), np.float32)
    labels = np.zeros((1, 1, 100, 100), np.uint8)
    labels[0, 0, :5, :10] = 2  # 50 lesion pixels
    report = compare(lambda b: labels, lambda b: np.zeros_like(labels), [batch], "argmax", INT8_TOLERANCES)
    assert report.rows[0].agreement == pytest.approx(0.995) and not report.passed
    assert any("dice" in f for f in report.rows[0].failures)


def test_cli_int8_gate_zero_also_lifts_the_dice_gate():
    from bcdeploy.cli.model_cmds import _int8_tolerances

    assert _int8_tolerances(0.5) == replace(INT8_TOLERANCES, min_agreement=0.5)
    assert _int8_tolerances(0.0).max_dice_drop == 1.0


def test_artifact_is_checked_or_says_why_not_and_the_table_shows_it():
    batch = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    logits = lambda b: np.concatenate([b[:, :1], -b[:, :1]], axis=1)  # noqa: E731
    report = compare(logits, lambda b: logits(b) + np.float32(1e-5), [batch], "logits", FP16_TOLERANCES)
    onnx = Artifact(name="onnx", precision="fp32", path=Path("out/model.onnx"), sidecar=Path("out/model.bcdeploy.json"),
                    meta=META, parity=report)
    engine = Artifact(name="engine", precision="fp16", path=Path("out/model.trt"),
                      sidecar=Path("out/model.trt.bcdeploy.json"), meta=META, not_checked="runs on a GPU only")
    with pytest.raises(ValueError):
        Artifact(name="x", precision="fp32", path=Path("m"), sidecar=Path("s"), meta=META)
    assert onnx.parity_summary()["checked"] and onnx.parity_summary()["passed"]
    assert engine.parity_summary() == {"checked": False, "reason": "runs on a GPU only"}
    lines = ExportResult(artifacts=(onnx, engine)).table().splitlines()
    assert lines[0].split() == ["artifact", "precision", "parity", "max|dlogit|", "agreement", "path"]
    assert lines[1].split() == ["onnx", "fp32", "ok", f"{report.rows[0].max_abs:.2e}", "100.000%", "out/model.onnx"]
    assert lines[2].split()[:3] == ["engine", "fp16", "not"] and "not checked: runs on a GPU only" in lines[2]
    assert lines[2].split()[-3:] == ["-", "-", "out/model.trt"]


def test_model_meta_is_immutable():
    with pytest.raises(FrozenInstanceError):
        META.precision = "fp16"
    assert replace(META, precision="fp16").precision == "fp16" and META.precision == "fp32"


def _labels_to_logits(labels: np.ndarray, classes: int = 3) -> np.ndarray:
    return (np.arange(classes)[None, :, None, None] == labels[:, None]).astype(np.float32) * 4.0


def test_dice_gate_ignores_a_few_flipped_pixels_of_a_rare_class_but_not_a_lost_lesion():
    """One flipped pixel of an 8-pixel class costs 7 % of that class's Dice: noise, not a lost lesion (it
    failed a random-init reference export at 100.000 % agreement). Losing half of a 400-pixel lesion fails."""


    ref = np.zeros((1, 256, 256), np.int64)
    ref[0, 10:12, 10:14] = 2  # a rare class: 8 pixels
    ref[0, 100:120, 100:120] = 1  # a lesion: 400 pixels
    batch = np.zeros((1, 3, 256, 256), np.float32)
    flipped = ref.copy()
    flipped[0, 10, 10] = 0
    report = compare(lambda _: _labels_to_logits(ref), lambda _: _labels_to_logits(flipped), [batch], "logits",
                     Tolerances(max_abs_logit=None, min_agreement=0.999, max_dice_drop=0.01))
    assert report.passed and report.rows[0].dice < 0.99  # the table still shows the raw Dice
    lost = ref.copy()
    lost[0, 100:110, 100:120] = 0  # half the lesion gone: 200 px, agreement still 99.7 %
    report = compare(lambda _: _labels_to_logits(ref), lambda _: _labels_to_logits(lost), [batch], "logits",
                     Tolerances(max_abs_logit=None, min_agreement=0.99, max_dice_drop=0.01))
    assert not report.passed and any("dice" in f for f in report.rows[0].failures)
