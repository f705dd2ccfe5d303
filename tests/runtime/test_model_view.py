"""Images reduced ahead of the model: the run's reader thread resizes each decoded image to the model's
input (Segmenter.model_view) and, where an overlay is drawn, keeps the picture it is drawn on (downscaled
to at most 2048 px: drawing.picture_of), so a queued mammogram holds ~1-9 MiB, not 40. What must hold:
the prediction (mask and probabilities, at the decoded size) is the same bit for bit as from the whole
image, for fixed-size and keep-ratio models; an overlay drawn on the picture is the one drawn on the whole
image; a sliding window (which reads every pixel) gets the image unchanged; pixels of any other size are
refused, not resized twice; and a real `infer` run, masks only or default outputs, does the reduction on
the reader thread and writes the masks and overlay JPEGs made from the whole image, byte for byte."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pytest

from bcdeploy.runtime.images.imageio import decode_image, read_image
from bcdeploy.runtime.results.lesions import extract_lesions
from bcdeploy.runtime.model.sidecar import ModelMeta
from bcdeploy.runtime.results.outputs import encode
from bcdeploy.runtime.model.preprocess import resize_for_model
from bcdeploy.runtime.model.segmenter import Segmenter, SlidingWindow
from bcdeploy.runtime.results.drawing import overlay, picture_of
from tests.conftest import run_cli
from tests.tiny_models import description, synthetic_png, write_onnx, write_sidecar


@pytest.fixture(scope="module")
def keep_ratio_onnx(tmp_path_factory) -> Path:
    path = write_onnx(tmp_path_factory.mktemp("keep_ratio") / "model.onnx")
    write_sidecar(path, description(input_size=[64, 48], keep_ratio=True))
    return path


def png(seed: int, height: int, width: int):
    return decode_image(synthetic_png(seed, height, width), f"img{seed}.png")


@pytest.mark.parametrize("which", ["tiny_onnx", "threshold_onnx", "keep_ratio_onnx"])
@pytest.mark.parametrize("hw", [(300, 260), (97, 411), (1200, 700)])
def test_the_model_view_predicts_exactly_what_the_whole_image_does(request, which, hw):
    image = png(3, *hw)
    with Segmenter(request.getfixturevalue(which)) as model:
        view = model.model_view(image)
        assert view.shape == image.shape == hw, "the decoded size stays: the mask is made at it"
        assert view.bgr.shape[:2] != hw and not view.full_size, "the pixels are the model's size"
        assert model.model_view(view) is view, "a second reduction is none"
        whole, reduced = model.predict([image])[0], model.predict([view])[0]
    assert whole.mask.shape == hw
    np.testing.assert_array_equal(reduced.mask, whole.mask)
    np.testing.assert_array_equal(reduced.probs, whole.probs)


def test_a_sliding_window_reads_every_pixel_so_the_image_stays_whole(tiny_onnx):
    image = png(4, 120, 90)
    with Segmenter(tiny_onnx, SlidingWindow()) as model:
        assert model.model_view(image) is image


def test_an_image_already_at_the_model_size_is_not_copied(tiny_onnx):
    image = decode_image(cv2.imencode(".png", np.full((32, 32), 90, np.uint8))[1].tobytes(), "small.png")
    with Segmenter(tiny_onnx) as model:
        assert model.model_view(image) is image


def test_pixels_of_a_third_size_are_refused_not_resized_again():
    meta = ModelMeta(classes=["background", "benign", "malignant"], palette=[[0, 0, 0]] * 3,
                     mean=[0.0] * 3, std=[1.0] * 3, input_size=[64, 96])
    bgr = np.zeros((50, 70, 3), np.uint8)
    assert resize_for_model(bgr, meta).shape == (64, 96, 3)
    at_model = np.zeros((64, 96, 3), np.uint8)
    assert resize_for_model(at_model, meta, original_hw=(500, 700)) is at_model
    for hw in ((40, 60), (50, 70)):  # neither the image's 500x700 nor the model's 64x96
        with pytest.raises(ValueError, match="neither its size nor the model's"):
            resize_for_model(np.zeros((*hw, 3), np.uint8), meta, original_hw=(500, 700))


SIZES = [(180, 150), (2600, 2150), (260, 190), (300, 210)]  # one larger than an overlay (2048): downscaled


def write_pngs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, (h, w) in enumerate(SIZES):
        (folder / f"img{i}.png").write_bytes(synthetic_png(10 + i, h, w))
    return folder


def spans_by_name(out: Path) -> dict[str, list[dict]]:
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db:
        return {name: json.loads(spans) for name, spans in db.execute("SELECT name, spans FROM images")}


def whole_image_outputs(model_path: Path, image_path: Path) -> tuple[np.ndarray, bytes]:
    """The mask and overlay JPEG made from the whole decoded image, as before any reduction."""
    image = read_image(image_path)
    with Segmenter(model_path) as model:
        prediction = model.predict([image])[0]
        classes, palette = model.meta.classes, model.meta.palette
    lesions = extract_lesions(prediction.mask, classes, prediction.probs)
    return prediction.mask, encode(overlay(image.bgr, prediction.mask, palette, classes, lesions), ".jpg")


@pytest.mark.parametrize("save", ["masks", None])
def test_a_run_reduces_images_on_the_reader_thread_with_the_whole_images_outputs(threshold_onnx, tmp_path, save):
    images, out = write_pngs(tmp_path / "in"), tmp_path / "out"
    run_cli("infer", "--model", threshold_onnx, images, "--out", out, *(["--save", save] if save else []))
    spans = spans_by_name(out)
    assert sorted(spans) == [f"img{i}" for i in range(len(SIZES))]
    for name in ("img1", "img2", "img3"):  # read ahead on the reader thread (img0 is read before the model opens)
        on_reader = [s for s in spans[name] if s["stage"] == "preprocess" and s["thread"] == "decode"]
        assert len(on_reader) == 1, spans[name]
    for i, hw in enumerate(SIZES):
        mask, vis = whole_image_outputs(threshold_onnx, images / f"img{i}.png")
        written = cv2.imread(str(out / "masks" / f"img{i}.png"), cv2.IMREAD_UNCHANGED)
        assert written is not None and written.shape == hw and mask.max() > 0
        np.testing.assert_array_equal(written, mask)
        if save is None:
            assert (out / "vis" / f"img{i}.jpg").read_bytes() == vis, f"img{i}: the overlay differs"


@pytest.mark.parametrize("hw", [(2600, 2150), (2100, 3000), (700, 500), (2048, 1000)])
def test_an_overlay_on_the_picture_is_the_overlay_on_the_whole_image(hw):
    image = png(6, *hw)
    mask = (image.bgr[..., 0] // 100).astype(np.uint8)  # 0/1/2 regions with outlines to draw
    lesions = extract_lesions(mask, ["background", "benign", "malignant"])
    palette = [[0, 0, 0], [0, 255, 0], [255, 0, 0]]
    picture = picture_of(image.bgr)
    assert max(picture.shape[:2]) == min(max(hw), 2048)
    assert picture_of(picture, hw) is picture, "a picture is not scaled twice"
    before = picture.copy()
    drawn = overlay(picture, mask, palette, ["background", "benign", "malignant"], lesions, "M")
    np.testing.assert_array_equal(picture, before)  # drawn on a copy: the picture serves the SC overlay too
    np.testing.assert_array_equal(
        drawn, overlay(image.bgr, mask, palette, ["background", "benign", "malignant"], lesions, "M"))
    if max(hw) > 2048:
        with pytest.raises(ValueError, match="neither its size nor its picture's"):
            picture_of(image.bgr[::2, ::2], hw)
