"""`prepare` never deletes its source, and a noisy mask never becomes extra lesions (issue 10, items 2, 4)."""

from __future__ import annotations

import dataclasses
import json
import os

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from bcdeploy.data.prepare import PrepareOptions
from bcdeploy.fileio import sha256_file


def _hashes(root):
    return {p.relative_to(root): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _prepare(root, out, *extra):
    args = ["prepare", "--images-dir", root / "TIFF Images", "--masks-dir", root / "ROI Masks",
            "--metadata", root / "Info.txt", "--output-dir", out, "--workers", "1", *extra]
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "no-overwrite"])
@pytest.mark.parametrize("target", ["root", "TIFF Images", "ROI Masks", "link-to-root"])
def test_output_overlapping_an_input_is_refused(dmid_copy, tmp_path, target, overwrite):
    if target == "root":
        out = dmid_copy
    elif target == "link-to-root":
        out = tmp_path / "link"
        os.symlink(dmid_copy, out)
    else:
        out = dmid_copy / target
    before = _hashes(dmid_copy)
    result = _prepare(dmid_copy, out, *(["--overwrite"] if overwrite else []))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    inputs = [str(dmid_copy / "TIFF Images"), str(dmid_copy / "ROI Masks"), str(dmid_copy / "Info.txt")]
    assert str(out) in errors[0] and any(path in errors[0] for path in inputs), errors[0]
    assert _hashes(dmid_copy) == before
    assert not list(tmp_path.rglob(".*staging-*")) and not list(tmp_path.rglob(".*.old-*"))


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        PrepareOptions("images", "masks", "Info.txt", "out")  # positional: easy to swap two folders
    assert all(f.kw_only for f in dataclasses.fields(PrepareOptions))


def _lesion_case(root, prepared):
    """A mask with lesions, its annotation in the session's prepared set, and its manifest record."""
    manifest = json.loads((prepared / "manifest.json").read_text())
    cid = next(c for c, r in sorted(manifest["images"].items()) if r["components"] >= 1)
    record = manifest["images"][cid]
    annotation = cv2.imread(str(prepared / record["files"]["annotation"]["path"]), cv2.IMREAD_UNCHANGED)
    return cid, next((root / "ROI Masks").glob(f"{cid}.*")), annotation, record


def _read_gray(path):
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return mask[..., :3].max(axis=2) if mask.ndim == 3 else mask


def _result_for(out, cid):
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["images"][cid]
    return manifest, record, cv2.imread(str(out / record["files"]["annotation"]["path"]), cv2.IMREAD_UNCHANGED)


def test_mask_at_128_with_speckle_of_1_adds_no_lesion(dmid_copy, prepared, tmp_path):
    """The issue's case: a mask stored at 128 with a speckle of value 1 (JPEG / anti-aliasing)."""
    cid, mask_path, clean_annotation, clean_record = _lesion_case(dmid_copy, prepared)
    mask = _read_gray(mask_path)
    noisy = np.where(mask > 0, 128, 0).astype(np.uint8)
    speckle = (np.random.default_rng(10).random(noisy.shape) < 0.03) & (noisy == 0)
    noisy[speckle] = 1
    cv2.imwrite(str(mask_path), noisy)
    result = _prepare(dmid_copy, tmp_path / "out")
    assert result.exit_code == 0, result.output
    manifest, record, annotation = _result_for(tmp_path / "out", cid)
    assert record["components"] == clean_record["components"]
    assert np.array_equal(annotation, clean_annotation)  # the same lesion pixels, label for label
    values, counts = np.unique(noisy, return_counts=True)
    assert record["mask_values"] == {str(v): int(c) for v, c in zip(values, counts)}  # {"0", "1", "128"}
    assert manifest["counts"]["masks_not_0_255"] == 1


def test_specks_below_min_area_are_dropped_and_counted(dmid_copy, prepared, tmp_path):
    cid, mask_path, clean_annotation, clean_record = _lesion_case(dmid_copy, prepared)
    mask = _read_gray(mask_path)
    assert not mask[1:4, 1:4].any()
    mask[1:4, 1:4] = 255  # a 9-pixel island, below the default minimum of 16
    cv2.imwrite(str(mask_path), mask)
    assert _prepare(dmid_copy, tmp_path / "out").exit_code == 0
    manifest, record, annotation = _result_for(tmp_path / "out", cid)
    assert record["dropped_components"] == 1 and record["dropped_pixels"] == 9
    assert manifest["counts"]["dropped_components"] == 1
    assert record["components"] == clean_record["components"] and np.array_equal(annotation, clean_annotation)
    assert record["mask_values"] is None  # still a 0/255 mask
    kept = _prepare(dmid_copy, tmp_path / "kept", "--min-lesion-area", "0")
    assert kept.exit_code == 0, kept.output
    _, record, _ = _result_for(tmp_path / "kept", cid)
    assert record["components"] == clean_record["components"] + 1 and record["dropped_components"] == 0


def test_mask_threshold_option(dmid_copy, prepared, tmp_path):
    """A mask stored at 100 is refused at the default threshold (all its lesions would be dropped; see
    tests/redteam/test_prepare_masks.py) and is lesion at --mask-threshold 100."""
    cid, mask_path, clean_annotation, clean_record = _lesion_case(dmid_copy, prepared)
    cv2.imwrite(str(mask_path), np.where(_read_gray(mask_path) > 0, 100, 0).astype(np.uint8))
    refused = _prepare(dmid_copy, tmp_path / "default")
    assert refused.exit_code == 1 and "--mask-threshold 100" in refused.output, refused.output
    assert _prepare(dmid_copy, tmp_path / "low", "--mask-threshold", "100").exit_code == 0
    _, record, annotation = _result_for(tmp_path / "low", cid)
    assert record["components"] == clean_record["components"] and np.array_equal(annotation, clean_annotation)
