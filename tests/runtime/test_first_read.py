"""The loop reads the first batch while the model opens (runtime/run/loop.LocalDriver), and still reads
every file exactly once: the resume rule, which needs the model, is applied to that batch afterwards.
Real runs with a real onnxruntime model."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from bcdeploy.runtime.images.imageio import read_image
from bcdeploy.runtime.results.outputs import encode
from bcdeploy.runtime.run import FileSource, RunOptions, run
from bcdeploy.runtime.model.segmenter import Segmenter


@pytest.fixture(scope="module")
def model(tiny_onnx) -> Path:
    return tiny_onnx


class CountingSource(FileSource):
    """Files as always; counts each read and says when the first one started."""

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.reads: Counter = Counter()
        self.first_read = threading.Event()

    def read(self, item):
        self.first_read.set()
        self.reads[item.path.name] += 1
        return super().read(item)


def images(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        picture = np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"case{i}.png"), picture)
    return folder


def test_first_read_starts_before_the_model_opens_and_each_file_is_read_once(model, tmp_path):
    folder = images(tmp_path / "in")
    source = CountingSource([folder])
    with Segmenter(model) as segmenter:
        def open_predictor(_images):
            # the loop must have started reading before it asks for the model: wait for it (bounded)
            assert source.first_read.wait(10), "the first read was not started before the model was opened"
            return segmenter

        summary = run(open_predictor, source, RunOptions(out=tmp_path / "out", batch_size=2))
        assert summary.processed == 3 and not summary.failed
        assert source.reads == {f"case{i}.png": 1 for i in range(3)}
        for i in range(3):  # the masks are those of the model on the decoded files
            expected = encode(segmenter.predict([read_image(folder / f"case{i}.png")])[0].mask, ".png")
            assert (tmp_path / "out" / "masks" / f"case{i}.png").read_bytes() == expected


def test_a_done_first_image_read_early_is_still_skipped_and_read_once(model, tmp_path):
    folder = images(tmp_path / "in")
    with Segmenter(model) as segmenter:
        run(lambda _images: segmenter, [folder], RunOptions(out=tmp_path / "out"))
        written = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.png")}
        (folder / "case2.png").write_bytes((folder / "case0.png").read_bytes())  # new bytes: recomputed
        source = CountingSource([folder])
        summary = run(lambda _images: segmenter, source, RunOptions(out=tmp_path / "out"))
    assert (summary.processed, summary.skipped) == (1, 2)
    assert source.reads == {f"case{i}.png": 1 for i in range(3)}
    unchanged = [p for p in written if "case2" not in p.name]
    assert all(p.stat().st_mtime_ns == written[p] for p in unchanged), "a skipped image was written again"


def test_an_undecodable_first_file_is_one_failure(model, tmp_path):
    folder = images(tmp_path / "in", 2)
    (folder / "a_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # sorts first
    with Segmenter(model) as segmenter:
        summary = run(lambda _images: segmenter, [folder], RunOptions(out=tmp_path / "out"))
    assert summary.processed == 2
    assert [Path(f["file"]).name for f in summary.failed] == ["a_broken.png"]
