"""INT8 ONNX (QDQ, per-channel weights) by onnxruntime's static quantisation, for CPU edge boxes.

Why: on CPUs FP32 is at its peak already (see benchmarks/); INT8 is the way past it. On this project's
AVX2-only CI machine the reference model runs 1.9x faster than FP32; with VNNI the gain is larger.
Calibration uses the same preprocessed images the parity check uses (real ones when given), and the
result is parity-checked against PyTorch like every other export. Two recipes, recorded in the sidecar:
* CPU (default): uint8 activations with a zero point, int8 per-channel weights (U8S8), onnxruntime's
  fastest on x86;
* TensorRT (`symmetric=True`): int8 activations and weights, zero point 0 - the only Q/DQ TensorRT
  builds (explicit quantisation) - and FP32 biases, which TensorRT fuses into the INT8 convolution
  itself (it has no INT32 dequantisation of a bias); the same file still runs in onnxruntime.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bcdeploy._imports import require
from bcdeploy.fileio import atomic_path

# Calibration images: activation ranges from 4 images missed lesion contrast the val set had; 16 give
# ranges that move the min lesion Dice (INT8 vs FP32) from 0.959 to 0.964 at 4x the quantisation time.
CALIBRATION_IMAGES = 16
# Layers kept in FP32: the classifier (the decode head's last convolution), whose outputs are the logits
# the argmax compares - its rounding moves lesion boundaries directly. Measured on the reference model
# (9 val images vs its FP32 ONNX, 16 calibration images): all INT8 99.868 % pixel agreement, worst lesion
# Dice 0.964, 815 ms; classifier FP32 99.902 %, 0.974, 854 ms; + the layer feeding it 99.911 %, 0.977,
# 915 ms; + the first convolution 99.923 %, 0.979, ~950 ms. The classifier alone buys most of the
# accuracy for the least time; `sensitive_convs` takes other counts for other models.
FP32_FIRST, FP32_LAST = 0, 1


def recipe(symmetric: bool, calibration: Sequence[np.ndarray], fp32_nodes: Sequence[str] = ()) -> dict:
    """What the sidecar records as `export.quantization`. `calibration_images` counts the distinct images
    in the calibration batches: fewer files than CALIBRATION_IMAGES are cycled to fill them, and the
    record says what the ranges really came from."""
    distinct = {hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest() for batch in calibration for image in batch}
    facts = {"format": "QDQ", "symmetric": symmetric, "weights": "int8 per-channel",
             "activations": "int8, zero point 0" if symmetric else "uint8 with zero point",
             "bias": "fp32" if symmetric else "int32", "calibration_images": len(distinct)}
    return {**facts, "fp32_nodes": list(fp32_nodes)} if fp32_nodes else facts


def sensitive_convs(model_path: str | Path, first: int = FP32_FIRST, last: int = FP32_LAST) -> list[str]:
    """Names of the first `first` Conv nodes reached from the graph input and the last `last` reached
    walking back from the output (breadth first): the layers kept in FP32."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    producers = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    downstream = _convs_reached([i.name for i in graph.input], lambda t: consumers.get(t, []), "output", first)
    upstream = _convs_reached([o.name for o in graph.output], lambda t: [producers[t]] if t in producers else [],
                              "input", last)
    return downstream + upstream


def _convs_reached(tensors: list[str], nodes_of, next_side: str, count: int) -> list[str]:
    """Breadth-first from `tensors` through `nodes_of(tensor)`, continuing on each node's `next_side`
    tensors; the first `count` named Conv nodes met."""
    found: list[str] = []
    seen: set[int] = set()
    queue = list(tensors)
    while queue and len(found) < count:
        for node in nodes_of(queue.pop(0)):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type == "Conv" and node.name and len(found) < count:
                found.append(node.name)
            queue.extend(getattr(node, next_side))
    return found


def quantize_int8(src: str | Path, dst: str | Path, calibration: Sequence[np.ndarray], symmetric: bool = False,
                  fp32_nodes: Sequence[str] = ()) -> Path:
    """Statically quantise `src` with activations calibrated on `calibration` batches (N,3,H,W); the
    `fp32_nodes` (sensitive_convs) stay in FP32."""
    quantization = require("onnxruntime.quantization", "INT8 export")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": b[i:i + 1]} for b in calibration for i in range(b.shape[0])])

        def get_next(self):
            return next(self.batches, None)

    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp, atomic_path(dst) as out:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantization.quantize_static(str(prepared), str(out), Reader(), quant_format=quantization.QuantFormat.QDQ,
                                     per_channel=True, weight_type=quantization.QuantType.QInt8,
                                     nodes_to_exclude=list(fp32_nodes),
                                     activation_type=quantization.QuantType.QInt8 if symmetric else quantization.QuantType.QUInt8,
                                     extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                                                    "QuantizeBias": not symmetric})
    return dst
