"""Scheduling of a directory run (issue 15): inference keeps the cores; the reader (read, hash, decode)
and the writer (encode, write, commit) run at a lower priority and fill the gaps; onnxruntime does
not busy-wait between layers. Checked on a real run with a real onnxruntime session."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from bcdeploy.runtime.model.backends import options_for
from bcdeploy.runtime.run import RunOptions, run
from bcdeploy.runtime.run.scheduling import BACKGROUND_NICE
from bcdeploy.runtime.run.sources import FileSource
from bcdeploy.runtime.model.segmenter import Segmenter

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


def nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class RecordingSource(FileSource):
    """Files, as `infer` reads them; notes the thread and its nice value where each hook runs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: dict[str, set[tuple[str, int]]] = {"read": set(), "commit": set()}

    def read(self, item):
        self.seen["read"].add((threading.current_thread().name, nice()))
        return super().read(item)

    def committed(self, row) -> None:
        """The run's on_settled hook: called where each row is committed (the writer thread)."""
        self.seen["commit"].add((threading.current_thread().name, nice()))


class RecordingSegmenter(Segmenter):
    def predict(self, images):
        self.nice_seen = nice()
        return super().predict(images)


@pytest.fixture(scope="module")
def model(tiny_onnx) -> Path:
    return tiny_onnx


def test_reader_and_writer_yield_to_inference(model: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"case{i}.png"), np.full((40, 56, 3), 60 * i, np.uint8))
    main_before = nice()
    source = RecordingSource([images])
    with RecordingSegmenter(model) as segmenter:
        summary = run(lambda _images: segmenter, source, RunOptions(out=tmp_path / "out", on_settled=source.committed))
    assert summary.processed == 3 and not summary.failed
    for hook in ("read", "commit"):
        assert source.seen[hook], f"{hook} never ran"
        for thread, value in source.seen[hook]:
            assert thread != threading.main_thread().name
            assert value >= BACKGROUND_NICE, f"{hook} ran at nice {value} on {thread}"
    assert segmenter.nice_seen == main_before  # inference keeps the caller's priority
    assert nice() == main_before  # and nothing leaked into the calling thread


def test_onnxruntime_does_not_spin_unless_asked(model: Path) -> None:
    with Segmenter(model) as quiet, Segmenter(model, options=options_for(model, spin=True)) as spinning:
        def entry(segmenter: Segmenter) -> str:
            opts = segmenter.runner.session.get_session_options()
            try:
                return opts.get_session_config_entry("session.intra_op.allow_spinning")
            except RuntimeError:  # not set: onnxruntime's default
                return ""

        assert entry(quiet) == "0"
        assert entry(spinning) in ("", "1")  # onnxruntime's default (spinning) when asked
