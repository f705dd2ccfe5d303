"""Which layers the INT8 export keeps in FP32 (export/int8.py): found from the graph's structure, not
from names, so any MMSeg head works: the first convolutions reached from the input and the last ones
reached walking back from the output, through any non-convolution node and across branches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bcdeploy.export.int8 import sensitive_convs

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def conv(name: str, src: str, dst: str, weights: list) -> onnx.NodeProto:
    weights.append(numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), f"{name}.w"))
    return helper.make_node("Conv", [src, f"{name}.w"], [dst], name=name)


def write_graph(path: Path) -> Path:
    """input -> stem -> relu -> two branches (a, b) -> concat -> fuse -> resize-free head -> cls -> output."""
    w: list = []
    nodes = [conv("stem", "input", "s", w), helper.make_node("Relu", ["s"], ["r"], name="relu"),
             conv("branch_a", "r", "a", w), conv("branch_b", "r", "b", w),
             helper.make_node("Add", ["a", "b"], ["ab"], name="add"), conv("fuse", "ab", "f", w),
             helper.make_node("Relu", ["f"], ["fr"], name="relu2"), conv("cls", "fr", "output", w)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])], w)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_classifier_is_the_default_and_counts_walk_the_graph(tmp_path: Path) -> None:
    model = write_graph(tmp_path / "m.onnx")
    assert sensitive_convs(model) == ["cls"]
    assert sensitive_convs(model, first=1, last=2) == ["stem", "cls", "fuse"]
    # breadth first across the branches, from both ends
    assert sensitive_convs(model, first=3, last=4) == ["stem", "branch_a", "branch_b", "cls", "fuse", "branch_a", "branch_b"]
    assert sensitive_convs(model, first=0, last=0) == []


def test_recipe_counts_the_distinct_calibration_images() -> None:
    """Fewer files than the batch holds are cycled; the sidecar must say how many images the ranges came from."""
    from bcdeploy.export.int8 import recipe

    four = np.random.default_rng(0).random((4, 3, 8, 8)).astype(np.float32)
    cycled = np.concatenate([four, four, four, four])  # 16 entries, 4 images
    assert recipe(False, [cycled])["calibration_images"] == 4
    assert recipe(False, [four[:2], four[2:]])["calibration_images"] == 4
    assert recipe(True, [four[:1]], ["cls"])["fp32_nodes"] == ["cls"] and "fp32_nodes" not in recipe(True, [four[:1]])
