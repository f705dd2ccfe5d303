import json

import cv2
import numpy as np
import pytest

from bcdeploy.data.metadata import group_by_image, read_metadata
from bcdeploy.data.prepare import PrepareOptions, prepare
from bcdeploy.data.synth import synthesize
from bcdeploy.errors import DataError, InputError
from bcdeploy.fileio import sha256_file
from tests.conftest import run_cli


def _options(root, out, **kw):
    return PrepareOptions(images_dir=str(root / "TIFF Images"), masks_dir=str(root / "ROI Masks"),
                          metadata=str(root / "Info.txt"), output_dir=str(out), **kw)


def test_end_to_end_layout_and_manifest(prepared, dmid):
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["classes"] == ["background", "benign", "malignant"]
    assert manifest["y_origin"] == "bottom"  # the fixture writes MIAS-style y
    assert manifest["y_origin_evidence"]["bottom"] > manifest["y_origin_evidence"]["top"]
    train, val = set(manifest["splits"]["train"]), set(manifest["splits"]["val"])
    assert train and val and not train & val and len(train | val) == 16
    for cid, record in manifest["images"].items():
        for kind in ("image", "annotation"):
            path = prepared / record["files"][kind]["path"]
            assert path.parent.name == record["split"]
            assert sha256_file(path) == record["files"][kind]["sha256"]
        ann = cv2.imread(str(prepared / record["files"]["annotation"]["path"]), cv2.IMREAD_UNCHANGED)
        img = cv2.imread(str(prepared / record["files"]["image"]["path"]))
        assert ann.shape == img.shape[:2]
        assert set(np.unique(ann)) <= {0, 1, 2, 255}


def test_lesion_classes_follow_metadata(prepared, dmid):
    manifest = json.loads((prepared / "manifest.json").read_text())
    rows = group_by_image(read_metadata(dmid / "Info.txt"))
    for cid, record in manifest["images"].items():
        wanted = {1 if r.severity == "B" else 2 for r in rows[cid] if r.severity}
        present = set(record["label_values"]) - {0}
        if not wanted:
            assert present == set(), f"{cid} is normal but has labels {present}"
        else:
            assert present - {255} <= wanted and present, f"{cid}: labels {present}, metadata {wanted}"


def test_origin_detected_both_ways(tmp_path):
    for origin in ("top", "bottom"):
        root = tmp_path / origin
        synthesize(root, count=8, min_size=300, max_size=340, seed=5, y_origin=origin, workers=1)
        report = prepare(_options(root, tmp_path / f"out-{origin}", workers=1))
        assert report.y_origin == origin
        manifest = json.loads((tmp_path / f"out-{origin}" / "manifest.json").read_text())
        assert manifest["y_origin"] == origin


def test_reads_original_layout_with_csv_and_png_masks(tmp_path):
    synthesize(tmp_path / "original", count=8, min_size=300, max_size=340, seed=2, layout="original", workers=1)
    root = tmp_path / "original"
    report = prepare(PrepareOptions(images_dir=str(root / "tiff_images"), masks_dir=str(root / "ground_truth"),
                                    metadata=str(root / "metadata" / "metadata.csv"),
                                    output_dir=str(tmp_path / "out"), workers=1))
    assert report.counts["images"] == 8


def test_binary_mode_resize_and_png(dmid, tmp_path):
    prepare(_options(dmid, tmp_path / "out", binary=True, resize_ratio=0.5, image_format="png"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["classes"] == ["background", "tumor"]
    record = next(r for r in manifest["images"].values() if r["metadata_classes"])
    assert set(record["label_values"]) - {255} == {0, 1}
    w, h = record["size"]
    assert record["out_size"] == [round(w * 0.5), round(h * 0.5)]
    assert record["files"]["image"]["path"].endswith(".png")


def test_split_is_seeded_and_stratified(dmid, tmp_path):
    a = prepare(_options(dmid, tmp_path / "a", seed=4))
    b = prepare(_options(dmid, tmp_path / "b", seed=4))
    ma, mb = (json.loads(open(r.manifest_path).read()) for r in (a, b))
    assert ma["splits"] == mb["splits"]
    for stratum in ("B", "M"):
        ids = [c for c, r in ma["images"].items() if (r["metadata_classes"][-1:] or ["N"])[0] == stratum]
        if len(ids) >= 2:
            assert {ma["images"][c]["split"] for c in ids} == {"train", "val"}


def test_no_leak_from_a_stale_output(dmid, tmp_path):
    out = tmp_path / "out"
    prepare(_options(dmid, out, seed=0))
    (out / "annotations" / "train" / "STALE.png").write_bytes(b"x")
    with pytest.raises(InputError, match="not empty"):
        prepare(_options(dmid, out, seed=1))
    prepare(_options(dmid, out, seed=1, overwrite=True))
    assert not (out / "annotations" / "train" / "STALE.png").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    for split in ("train", "val"):
        on_disk = {p.stem for p in (out / "annotations" / split).iterdir()}
        assert on_disk == set(manifest["splits"][split])


def test_inputs_are_not_modified(dmid, tmp_path):
    before = {p: sha256_file(p) for p in dmid.rglob("*") if p.is_file()}
    prepare(_options(dmid, tmp_path / "out"))
    assert before == {p: sha256_file(p) for p in dmid.rglob("*") if p.is_file()}


def _break_tiff(root):
    victim = sorted((root / "ROI Masks").glob("*.tif"))[0].stem
    path = root / "TIFF Images" / f"{victim}.tif"
    path.write_bytes(path.read_bytes()[:300])
    return victim, "cannot read the TIFF header"  # refused at the header, before any decode


def _mismatch(root):
    mask = sorted((root / "ROI Masks").glob("*.tif"))[0]
    img = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(mask), img[:-8])
    return mask.stem, "mask is"


def _row_for_missing_image(root):
    with open(root / "Info.txt", "a") as fh:
        fh.write("IMG999 G CIRC B 10 10 5\n")
    return "IMG999", "no image"


def _unknown_class(root):
    text = (root / "Info.txt").read_text().replace(" NORM\n", " NORM\nIMG001 G CIRC Q 1 1 1\n", 1)
    (root / "Info.txt").write_text(text)
    return None, "unknown class code"


def _non_utf8(root):
    (root / "Info.txt").write_bytes((root / "Info.txt").read_bytes() + b"\xff\n")
    return None, "not UTF-8"


@pytest.mark.parametrize("breaker", [_break_tiff, _mismatch, _row_for_missing_image, _unknown_class, _non_utf8])
def test_bad_input_one_line_error_and_nothing_written(dmid_copy, tmp_path, breaker):
    victim, message = breaker(dmid_copy)
    out = tmp_path / "out"
    proc = run_cli("prepare", "--images-dir", dmid_copy / "TIFF Images", "--masks-dir", dmid_copy / "ROI Masks",
                   "--metadata", dmid_copy / "Info.txt", "--output-dir", out, check=False)
    assert proc.returncode == 1
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0] and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.staging-*"))
    if victim and breaker is not _row_for_missing_image:
        assert victim in error_lines[0]


@pytest.mark.parametrize("breaker", [_break_tiff, _mismatch, _row_for_missing_image])
def test_skip_bad_lists_the_file_and_goes_on(dmid_copy, tmp_path, breaker):
    victim, _ = breaker(dmid_copy)
    report = prepare(_options(dmid_copy, tmp_path / "out", skip_bad=True))
    assert victim in {s["id"] for s in report.skipped}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert victim not in manifest["images"] and manifest["counts"]["images"] >= 14


def test_bad_options_rejected(dmid, tmp_path):
    with pytest.raises(InputError, match="train-ratio"):
        prepare(_options(dmid, tmp_path / "o", train_ratio=1.0))
    with pytest.raises(InputError, match="categories"):
        prepare(_options(dmid, tmp_path / "o", categories=("B", "X")))
    with pytest.raises(DataError, match="not found"):
        prepare(PrepareOptions(images_dir=str(tmp_path / "none"), masks_dir=str(tmp_path / "no-masks"),
                               metadata=str(dmid / "Info.txt"), output_dir=str(tmp_path / "o")))
