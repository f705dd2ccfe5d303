"""Images reduced to the model's view ahead of the model (Segmenter.model_view): the run's reader thread
resizes a decoded image to the model's input when no output draws over it, so a queued mammogram holds a
model-size copy. What must hold: the prediction (mask and probabilities, at the decoded size) is the same
bit for bit as from the whole image, for fixed-size and keep-ratio models; a sliding window (which reads
every pixel) gets the image unchanged; pixels of any other size are refused, not resized twice; and a real
`infer --save masks` run does the resize on the reader thread with the same masks as a run that keeps the
images whole for its overlays."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pytest

from bcdeploy.runtime.imageio import decode_image
from bcdeploy.runtime.metadata import ModelMeta
from bcdeploy.runtime.preprocess import resize_for_model
from bcdeploy.runtime.segmenter import Segmenter, SlidingWindow
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


def write_pngs(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"img{i}.png").write_bytes(synthetic_png(10 + i, 180 + 40 * i, 150 + 20 * i))
    return folder


def spans_by_name(out: Path) -> dict[str, list[dict]]:
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db:
        return {name: json.loads(spans) for name, spans in db.execute("SELECT name, spans FROM images")}


def test_a_masks_only_run_resizes_on_the_reader_thread_with_the_same_masks(threshold_onnx, tmp_path):
    images = write_pngs(tmp_path / "in", 4)
    run_cli("infer", "--model", threshold_onnx, images, "--out", tmp_path / "masks", "--save", "masks")
    run_cli("infer", "--model", threshold_onnx, images, "--out", tmp_path / "whole")  # overlays: images whole
    masks, whole = spans_by_name(tmp_path / "masks"), spans_by_name(tmp_path / "whole")
    assert sorted(masks) == sorted(whole) == [f"img{i}" for i in range(4)]
    for name in ("img1", "img2", "img3"):  # read ahead on the reader thread (img0 is read before the model opens)
        on_reader = [s for s in masks[name] if s["stage"] == "preprocess" and s["thread"] == "decode"]
        assert len(on_reader) == 1, masks[name]
    for spans in whole.values():
        assert [s["thread"] for s in spans if s["stage"] == "preprocess"] == ["segment"], "drawn over: kept whole"
    for name in masks:
        a = cv2.imread(str(tmp_path / "masks" / "masks" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / "whole" / "masks" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert a is not None and a.shape == b.shape and a.shape[:2] == (180 + 40 * int(name[3:]), 150 + 20 * int(name[3:]))
        np.testing.assert_array_equal(a, b)
        assert a.max() > 0, "the threshold model finds something to compare"
