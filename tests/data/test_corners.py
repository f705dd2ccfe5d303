"""Corners of preparing and reading data (issue "Reliability round 3", defect 6): an empty metadata file
is an error, prepared folders take the usual mode (not mkdtemp's 0700), a multi-page TIFF is refused
by name instead of silently reading page 0."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import tifffile

from bcdeploy.errors import InputError
from bcdeploy.runtime.images.imageio import read_image
from tests.conftest import run_cli


def _prepare(root, out, metadata):
    return run_cli("prepare", "--images-dir", root / "TIFF Images", "--masks-dir", root / "ROI Masks",
                   "--metadata", metadata, "--output-dir", out, "--workers", "1", check=False)


def test_empty_metadata_is_an_error(dmid, tmp_path):
    empty = tmp_path / "Info.txt"
    empty.write_text("")
    result = _prepare(dmid, tmp_path / "out", empty)
    assert result.returncode == 1 and "no metadata rows" in result.stderr, result.stderr


def test_prepared_folders_take_the_usual_mode(dmid, prepared):
    umask = os.umask(0)
    os.umask(umask)
    for folder in (prepared, prepared / "images", prepared / "annotations" / "train"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask, folder


def test_a_multi_page_tiff_is_refused_and_a_thumbnail_page_is_not_a_page(tmp_path):
    page = np.random.default_rng(0).integers(0, 255, (96, 80), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "two.tif", np.stack([page, page[::-1]]))  # two full pages
    with pytest.raises(InputError, match="multi-page TIFF .2 full-resolution pages"):
        read_image(tmp_path / "two.tif")
    with tifffile.TiffWriter(tmp_path / "thumb.tif") as tif:
        tif.write(page)
        tif.write(page[::4, ::4], subfiletype=1)  # a reduced-resolution copy
    assert read_image(tmp_path / "thumb.tif").shape[:2] == (96, 80)


def test_min_lesion_area_above_every_lesion_is_an_error_and_writes_nothing(dmid, tmp_path):
    result = run_cli("prepare", "--images-dir", dmid / "TIFF Images", "--masks-dir", dmid / "ROI Masks",
                     "--metadata", dmid / "Info.txt", "--output-dir", tmp_path / "out", "--workers", "1",
                     "--min-lesion-area", "100000000", check=False)
    assert result.returncode == 1 and "--min-lesion-area 100000000" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_the_manifest_counts_what_the_annotations_hold(prepared):
    import json

    counts = json.loads((prepared / "manifest.json").read_text())["counts"]
    assert 0 < counts["labelled_benign"] <= counts["with_benign"] + counts["with_malignant"]
    assert 0 < counts["labelled_malignant"]
