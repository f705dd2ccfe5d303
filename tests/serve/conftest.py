"""A tiny ONNX segmenter built with onnx.helper (no torch, no training): a 1x1 convolution whose
logits turn dark/mid/bright pixels into background/benign/malignant, plus its sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def build_tiny_onnx(folder: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from bcdeploy.runtime.metadata import ModelMeta, sidecar_path_for

    # inputs are (x - 128) / 64 per channel; logits: bg = -3m, benign = 0.5, malignant = 3m - 2 (m: mean)
    weight = np.array([[-1.0] * 3, [0.0] * 3, [1.0] * 3], np.float32).reshape(3, 3, 1, 1)
    bias = np.array([0.0, 0.5, -2.0], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["output"])], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "tiny.onnx"
    onnx.save(model, str(path))
    meta = ModelMeta(classes=["background", "benign", "malignant"], palette=[[0, 0, 0], [0, 255, 0], [255, 0, 0]],
                     mean=[128.0] * 3, std=[64.0] * 3, input_size=[96, 128])
    sidecar_path_for(path).write_text(meta.to_json())
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_onnx(tmp_path_factory.mktemp("tiny_model"))


def synthetic_png(seed: int, height: int = 300, width: int = 260) -> bytes:
    """A gray image with a dark background, mid tissue and a few bright blobs (all three classes)."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.full((height, width), 40, np.uint8)
    cv2.ellipse(image, (width // 2, height // 2), (width // 3, height // 3), 0, 0, 360, 150, -1)
    for _ in range(3):
        x, y = int(rng.integers(40, width - 40)), int(rng.integers(40, height - 40))
        cv2.circle(image, (x, y), int(rng.integers(6, 20)), 250, -1)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()
