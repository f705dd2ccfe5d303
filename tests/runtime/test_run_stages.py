"""The run loop with a predictor of known output (no model needed): any exception from one image,
whatever its type and stage, is that image's failure line and ledger row; the others finish."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from bcdeploy.runtime.model.predictor import Prediction
from bcdeploy.runtime.run import RunOptions, run
from tests.badinputs import mammogram, write_tiff


class ThresholdPredictor:
    """Bright pixels are class 2; an image whose width is `crash_width` raises a bare RuntimeError, one of
    `bad_mask_width` gets a 3-D mask (the write stage then fails)."""

    classes = ["background", "benign", "malignant"]
    palette = [[0, 0, 0], [0, 255, 0], [255, 0, 0]]

    def __init__(self, crash_width: int, bad_mask_width: int) -> None:
        self.crash_width, self.bad_mask_width = crash_width, bad_mask_width
        self.calls: list[int] = []

    def describe(self) -> dict:
        return {"backend": "threshold", "sha256": "0" * 64, "mask_options": {"threshold": 200}}

    def predict(self, images):
        self.calls.append(len(images))
        out = []
        for image in images:
            if image.shape[1] == self.crash_width:
                raise RuntimeError("backend exploded")
            mask = np.where(image.bgr[..., 0] > 200, 2, 0).astype(np.uint8)
            if image.shape[1] == self.bad_mask_width:
                mask = np.dstack([mask, mask])
            out.append(Prediction(mask, None))
        return out


def test_any_exception_in_segmenting_or_writing_is_one_failure(tmp_path):
    rng = np.random.default_rng(21)
    widths = {"a": 128, "crash": 136, "b": 144, "badmask": 152, "c": 160}
    for name, width in widths.items():
        write_tiff(tmp_path / "in" / f"{name}.tif", mammogram(rng, 160, width))
    predictor = ThresholdPredictor(crash_width=136, bad_mask_width=152)
    out = tmp_path / "out"
    summary = run(lambda _images: predictor, [str(tmp_path / "in")], RunOptions(out=out, batch_size=5))
    assert summary.processed == 3 and not summary.ok
    errors = {f["file"].split("/")[-1]: f["error"] for f in summary.failed}
    assert set(errors) == {"crash.tif", "badmask.tif"}
    assert "RuntimeError: backend exploded" in errors["crash.tif"]
    assert predictor.calls[0] == 5, "the batch is tried whole first, then one by one"
    report = json.loads((out / "results.json").read_text())
    assert [e["name"] for e in report["images"]] == ["a", "b", "c"]
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db:
        rows = dict(db.execute("SELECT name, status FROM images"))
    assert rows == {"a": "ok", "b": "ok", "c": "ok", "crash": "failed", "badmask": "failed"}
    assert not (out / "masks" / "badmask.png").exists() and not list(out.rglob("*.part*"))


def test_pixels_are_dropped_after_the_model_when_no_output_draws_on_them():
    """Memory: without vis/sc the records a run keeps in flight hold no pixels after the model step;
    their reports still see the size, and a stray drawing fails instead of drawing on a blank."""
    from bcdeploy.runtime.images.imageio import DecodedImage
    from bcdeploy.runtime.results.outputs import draws_image
    from bcdeploy.runtime.results.drawing import overlay

    image = DecodedImage(np.full((30, 40, 3), 7, np.uint8), "png", "uint8", 3, "none")
    bare = image.without_pixels()
    assert bare.shape == (30, 40) and bare.bgr.size == 0 and image.bgr.size == 30 * 40 * 3
    mask = np.zeros((30, 40), np.uint8)
    mask[5:10, 5:10] = 2
    with pytest.raises(Exception):  # noqa: B017 - any failure, as long as no blank overlay is drawn
        overlay(bare.bgr, mask, [[0, 0, 0], [0, 255, 0], [255, 0, 0]], ["background", "benign", "malignant"], [], None)
    assert draws_image(frozenset({"vis"})) and draws_image(frozenset({"mask", "sc"}))
    assert not draws_image(frozenset({"mask", "biner", "seg", "sr"}))
