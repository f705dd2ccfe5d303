"""The one builder of tiny ONNX segmentation models (onnx.helper, no torch): a 1x1 Conv with C output
channels, optionally followed by an in-graph argmax, plus a valid sidecar and embedded metadata to
vary. tests/conftest.py turns the common shapes into session fixtures (`tiny_onnx`, `threshold_onnx`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CLASSES = ["background", "benign", "malignant"]
PALETTE = [[0, 0, 0], [0, 255, 0], [255, 0, 0]]
SHA_A, SHA_B = "a" * 64, "b" * 64


def description(classes: list[str] = CLASSES, **overrides: Any) -> dict[str, Any]:
    """A valid model description (what export writes), with `overrides` applied."""
    data = {"format": "bcdeploy-model", "schema_version": 1, "classes": list(classes),
            "palette": [list(PALETTE[i % 3]) for i in range(len(classes))],
            "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "input_size": [32, 32],
            "channel_order": "RGB", "size_divisor": 16, "output_kind": "logits", "output_dtype": "float32",
            "source": {"checkpoint": "iter_30.pth", "checkpoint_sha256": SHA_A}}
    data.update(overrides)
    return data


def write_onnx(path: Path, channels: int = 3, argmax: bool = False, embedded: dict | None = None, *,
               input_name: str = "input", output_name: str = "output", weight: np.ndarray | None = None,
               bias: np.ndarray | None = None) -> Path:
    """(N,3,H,W) float32 -> (N,C,H,W) float32 logits, or (N,1,H,W) uint8 class indices with `argmax`.
    Random weights (seed 0) unless `weight` (C,3,1,1) and `bias` (C,) are given."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    if weight is None:
        weight = np.random.default_rng(0).standard_normal((channels, 3, 1, 1)).astype(np.float32)
    conv_inputs = [input_name, "w"] + (["b"] if bias is not None else [])
    nodes = [helper.make_node("Conv", conv_inputs, ["logits" if argmax else output_name])]
    out_type, out_channels = TensorProto.FLOAT, channels
    if argmax:
        nodes += [helper.make_node("ArgMax", ["logits"], ["labels"], axis=1, keepdims=1),
                  helper.make_node("Cast", ["labels"], [output_name], to=TensorProto.UINT8)]
        out_type, out_channels = TensorProto.UINT8, 1
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info(output_name, out_type, ["N", out_channels, "H", "W"])],
        [numpy_helper.from_array(weight, "w")] + ([numpy_helper.from_array(bias, "b")] if bias is not None else []))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if embedded is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "bcdeploy", json.dumps(embedded)
    onnx.save(model, str(path))
    return path


def write_sidecar(model_path: Path, data: Any) -> Path:
    """model.onnx -> model.bcdeploy.json, as export names it."""
    sidecar = model_path.with_name(model_path.name.split(".")[0] + ".bcdeploy.json")
    sidecar.write_text(json.dumps(data))
    return sidecar


def write_threshold_onnx(folder: Path) -> Path:
    """A segmenter of known output: inputs are (x - 128) / 64 per channel; logits bg = -3m, benign = 0.5,
    malignant = 3m - 2 (m: the pixel's channel sum), so dark, mid and bright pixels get classes 0, 1, 2."""
    weight = np.array([[-1.0] * 3, [0.0] * 3, [1.0] * 3], np.float32).reshape(3, 3, 1, 1)
    path = write_onnx(folder / "tiny.onnx", weight=weight, bias=np.array([0.0, 0.5, -2.0], np.float32))
    write_sidecar(path, description(mean=[128.0] * 3, std=[64.0] * 3, input_size=[96, 128], source={}))
    return path


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
