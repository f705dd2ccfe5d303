"""The per-stage Gantt timeline, on synthetic stage timestamps."""

import cv2
import pytest

from bcdeploy.bench.timeline import Span, plot_timeline, rows, summarize, to_spans
from bcdeploy.errors import InputError


def _pipelined(images=4, decode=0.3, infer=1.0, write=0.2):
    """decode of image i+1 overlaps infer of image i; write of image i runs after its infer."""
    spans, t_decode, t_infer = [], 0.0, 0.0
    for i in range(images):
        name = f"IMG{i:03d}"
        spans.append({"image": name, "stage": "decode", "start": t_decode, "end": t_decode + decode, "thread": "decode"})
        start = max(t_decode + decode, t_infer)
        spans.append({"image": name, "stage": "infer", "start": start, "end": start + infer})
        spans.append({"image": name, "stage": "write", "start": start + infer, "end": start + infer + write,
                      "thread": "write"})
        t_decode, t_infer = t_decode + decode, start + infer
    return spans


def test_plot_writes_a_png_with_one_row_per_stage(tmp_path):
    path = tmp_path / "plots" / "timeline.png"
    stats = plot_timeline(_pipelined(), path, title="synthetic")
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[0] > 100 and picture.shape[1] > 500
    assert list(stats["rows"]) == ["decode (decode)", "infer", "write (write)"]
    assert [p.name for p in path.parent.iterdir()] == ["timeline.png"]  # atomic: no temp left over


def test_summary_counts_overlap_once():
    stats = summarize(to_spans(_pipelined(images=4)))
    # infer runs back to back after the first decode: 0.3 s idle, then 4 x 1.0 s; writes trail 0.2 s
    assert stats["wall_s"] == pytest.approx(0.3 + 4.0 + 0.2)
    assert stats["rows"]["infer"]["busy_s"] == pytest.approx(4.0)
    assert stats["rows"]["decode (decode)"]["busy_s"] == pytest.approx(1.2)
    overlapping = [Span("a", "infer", 0, 2), Span("b", "infer", 1, 3), Span("c", "infer", 5, 6)]
    assert summarize(overlapping)["rows"]["infer"] == {"busy_s": 4.0, "share": pytest.approx(4 / 6, abs=1e-4)}


def test_rows_follow_the_pipeline_order():
    spans = [Span("a", s, 0, 1, t) for s, t in [("write", None), ("custom", None), ("decode", "t2"), ("decode", "t1"),
                                                 ("infer", None), ("preprocess", None)]]
    assert rows(spans) == ["decode (t1)", "decode (t2)", "preprocess", "infer", "write", "custom"]


def test_bad_timestamps_are_refused(tmp_path):
    with pytest.raises(InputError, match="ends"):
        plot_timeline([{"image": "a", "stage": "infer", "start": 2.0, "end": 1.0}], tmp_path / "t.png")
    with pytest.raises(InputError, match="no stage"):
        plot_timeline([], tmp_path / "t.png")
    assert not (tmp_path / "t.png").exists()
