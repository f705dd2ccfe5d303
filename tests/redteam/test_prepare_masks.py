"""`prepare` with a mask saved as 0/1 (or 0/100) instead of DMID's 0/255: at the default threshold 128
every lesion pixel became background, exit 0, and the image entered the training set as lesion-free."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli


def _prepare(root, out, *extra):
    args = ["prepare", "--images-dir", root / "TIFF Images", "--masks-dir", root / "ROI Masks",
            "--metadata", root / "Info.txt", "--output-dir", out, "--workers", "1", *extra]
    return CliRunner().invoke(cli, [str(a) for a in args])


def _lesion_mask(root):
    for path in sorted((root / "ROI Masks").iterdir()):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is not None and mask.max() > 0:
            return path, mask
    raise AssertionError("the generated data set has no lesion mask")


@pytest.mark.parametrize("value", [1, 100])
def test_mask_with_all_values_below_threshold_is_refused_not_emptied(dmid_copy, tmp_path, value):
    path, mask = _lesion_mask(dmid_copy)
    cv2.imwrite(str(path), np.where(mask > 0, value, 0).astype(np.uint8))
    result = _prepare(dmid_copy, tmp_path / "out")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and path.name in errors[0] and f"--mask-threshold {value}" in errors[0], result.output
    assert not (tmp_path / "out").exists()
    skipped = _prepare(dmid_copy, tmp_path / "skip", "--skip-bad")
    assert skipped.exit_code == 0, skipped.output
    manifest = json.loads((tmp_path / "skip" / "manifest.json").read_text())
    assert path.stem not in manifest["images"]
    assert any(s["id"] == path.stem and "--mask-threshold" in s["reason"] for s in manifest["skipped"])
    lowered = _prepare(dmid_copy, tmp_path / "low", "--mask-threshold", str(value))
    assert lowered.exit_code == 0, lowered.output
    record = json.loads((tmp_path / "low" / "manifest.json").read_text())["images"][path.stem]
    assert record["components"] >= 1


def test_16_bit_mask_is_binarised_at_the_threshold_not_at_any_non_zero(dmid_copy, tmp_path):
    """A 16-bit mask (0/65535) with a 6x6 speck of value 1: read_mask mapped every non-zero 16-bit
    value to 255, so the speck became a 36-pixel lesion, whatever --mask-threshold said."""
    path, mask = _lesion_mask(dmid_copy)
    clean = _prepare(dmid_copy, tmp_path / "clean")
    assert clean.exit_code == 0, clean.output
    clean_record = json.loads((tmp_path / "clean" / "manifest.json").read_text())["images"][path.stem]
    wide = np.where(mask > 0, 65535, 0).astype(np.uint16)
    ys, xs = np.nonzero(mask == 0)
    y, x = next((y, x) for y, x in zip(ys, xs) if not mask[max(0, y - 10):y + 16, max(0, x - 10):x + 16].any()
                and y + 6 <= mask.shape[0] and x + 6 <= mask.shape[1])
    wide[y:y + 6, x:x + 6] = 1
    path.unlink()
    assert cv2.imwrite(str(path.with_suffix(".png")), wide)
    result = _prepare(dmid_copy, tmp_path / "out")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "manifest.json").read_text())["images"][path.stem]
    assert record["components"] == clean_record["components"], (record, clean_record)
