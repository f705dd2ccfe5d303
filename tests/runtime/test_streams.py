"""Several images at once (issue 24): a model that serves `concurrency` predict calls together (OpenVINO's
throughput streams) gets that many batches in flight; results are still written, counted and reported
in input order, the masks are those of one image at a time, and the hint changes no result's identity."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bcdeploy.runtime.model.backends.options import OnnxRuntimeOptions, OpenVINOOptions
from bcdeploy.runtime.model.predictor import Prediction
from bcdeploy.runtime.run import RunOptions, run
from tests.badinputs import mammogram, write_tiff


def test_auto_hint_is_settled_by_the_size_of_the_run() -> None:
    assert OpenVINOOptions().hint == "auto"
    assert OpenVINOOptions().for_run(1).hint == "latency"
    assert OpenVINOOptions().for_run(2).hint == "throughput"
    assert OpenVINOOptions(hint="latency").for_run(200).hint == "latency"  # the user's word stands
    assert OpenVINOOptions(hint="throughput").for_run(1).hint == "throughput"
    assert OpenVINOOptions(threads=3).for_run(5) == OpenVINOOptions(threads=3, hint="throughput")
    onnx = OnnxRuntimeOptions(threads=2)
    assert onnx.for_run(50) is onnx  # onnxruntime runs one image at a time, with every thread


class StreamsPredictor:
    """Class 2 where the blue channel is bright. Serves `concurrency` calls at once; the first image of
    the run takes longer, so the second finishes first, and every call notes how many ran with it."""

    classes = ["background", "benign", "malignant"]
    palette = [[0, 0, 0], [0, 255, 0], [255, 0, 0]]

    def __init__(self, concurrency: int, slow_width: int) -> None:
        self.concurrency, self.slow_width = concurrency, slow_width
        self.running = self.most = 0
        self.finished: list[int] = []  # widths, in the order predict returned
        self._lock = threading.Lock()

    def describe(self) -> dict:
        return {"backend": "streams", "sha256": "1" * 64, "mask_options": {"threshold": 200}}

    def predict(self, images):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.6 if images[0].shape[1] == self.slow_width else 0.05)
            return [Prediction(np.where(image.bgr[..., 0] > 200, 2, 0).astype(np.uint8), None) for image in images]
        finally:
            with self._lock:
                self.running -= 1
                self.finished += [image.shape[1] for image in images]


@pytest.mark.parametrize("concurrency", [1, 2, 3])
def test_batches_in_flight_follow_the_model_and_results_keep_input_order(tmp_path: Path, concurrency: int) -> None:
    rng = np.random.default_rng(24)
    widths = [120 + 8 * i for i in range(6)]
    for index, width in enumerate(widths):
        write_tiff(tmp_path / "in" / f"img{index}.tif", mammogram(rng, 140, width))
    predictor = StreamsPredictor(concurrency, slow_width=widths[0])
    progress: list[str] = []
    out = tmp_path / "out"
    summary = run(lambda _images: predictor, [str(tmp_path / "in")],
                  RunOptions(out=out, on_progress=lambda name, total: progress.append(name)))
    assert summary.ok and summary.processed == len(widths)
    assert predictor.most == concurrency, f"{predictor.most} calls ran at once; the model serves {concurrency}"
    if concurrency > 1:
        assert predictor.finished[0] != widths[0], "the slow first image must have been overtaken"
    names = [f"img{i}" for i in range(len(widths))]
    assert progress == names
    assert [e["name"] for e in json.loads((out / "results.json").read_text())["images"]] == names
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db:
        rows = db.execute("SELECT name, status FROM images ORDER BY rowid").fetchall()
    assert rows == [(name, "ok") for name in names], "rows are committed in input order"
    for index in range(len(widths)):  # each mask is its own image's (no mix-up between streams)
        image = cv2.imread(str(tmp_path / "in" / f"img{index}.tif"), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(out / "masks" / f"img{index}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(mask, np.where(image[..., 0] > 200, 2, 0).astype(np.uint8))


# --- the real OpenVINO model ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("streams_scans")
    rng = np.random.default_rng(31)
    for index in range(5):
        write_tiff(folder / f"scan{index}.tif", mammogram(rng, 420 + 16 * index, 330))
    return folder


def infer(*args) -> tuple[int, str]:
    from bcdeploy.cli import cli

    result = CliRunner().invoke(cli, ["infer", *map(str, args)])
    return result.exit_code, result.output


@pytest.mark.mmseg
def test_openvino_streams_give_the_masks_of_one_image_at_a_time(exported: Path, scans: Path) -> None:
    from bcdeploy.runtime.images.imageio import decode_image
    from bcdeploy.runtime.model.segmenter import Segmenter

    images = [decode_image(p.read_bytes(), p) for p in sorted(scans.iterdir())]
    with Segmenter(exported / "model.xml", options=OpenVINOOptions(hint="latency")) as one, \
            Segmenter(exported / "model.xml", options=OpenVINOOptions(hint="throughput")) as streams:
        assert one.concurrency == 1 and streams.concurrency >= 1
        expected = [p.mask for p in one.predict(images)]
        with ThreadPoolExecutor(max(2, streams.concurrency)) as pool:  # more callers than streams: they wait
            got = list(pool.map(lambda image: streams.predict([image])[0].mask, images))
    for a, b in zip(expected, got):
        assert np.array_equal(a, b)


@pytest.mark.mmseg
def test_hint_changes_speed_not_results(exported: Path, scans: Path, tmp_path: Path) -> None:
    model = exported / "model.xml"
    code, output = infer("--engine", model, scans, "--out", tmp_path / "one", "--hint", "latency")
    assert code == 0, output
    code, output = infer("--engine", model, scans, "--out", tmp_path / "auto")
    assert code == 0, output
    reports = {name: json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "auto")}
    assert reports["one"]["model"]["hint"] == "latency"
    assert reports["auto"]["model"]["hint"] == "throughput", "a run of several images uses OpenVINO's streams"
    for path in sorted((tmp_path / "one" / "masks").iterdir()):
        assert path.read_bytes() == (tmp_path / "auto" / "masks" / path.name).read_bytes()
    assert [e["name"] for e in reports["auto"]["images"]] == sorted(p.stem for p in scans.iterdir())
    # the results are bound to the same model and mask options: a rerun with the other hint redoes nothing
    code, output = infer("--engine", model, scans, "--out", tmp_path / "one")
    assert code == 0 and "processed 0, skipped 5" in output, output
