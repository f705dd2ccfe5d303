"""Facts about an ONNX model for `bcdeploy inspect`.

FLOPs are counted for Conv/ConvTranspose/Gemm/MatMul (2 x multiply-adds) at a concrete input size.
The output shapes those need come from running the model once in onnxruntime with every counted
node's output exposed: shape inference alone cannot follow the dynamic Resize size arithmetic.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from bcdeploy._imports import require
from bcdeploy.errors import InputError
from bcdeploy.runtime.model.sidecar import METADATA_KEY

COUNTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _dims(value_info) -> list:
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in value_info.type.tensor_type.shape.dim]


def inspect_onnx(path: str | Path, size: tuple[int, int] | None = None) -> dict:
    onnx = require("onnx", "inspecting ONNX models")
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as err:  # noqa: BLE001 - protobuf decode errors have many types
        raise InputError(f"{path}: not a readable ONNX model ({type(err).__name__})") from None
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    params = sum(int(np.prod(t.dims)) for t in graph.initializer)
    param_bytes = sum(onnx.numpy_helper.to_array(t).nbytes for t in graph.initializer)
    props = {p.key: p.value for p in model.metadata_props}
    info = {
        "file": str(path),
        "size_mb": round(path.stat().st_size / 2**20, 3),
        "ir_version": model.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [{"name": i.name, "shape": _dims(i), "dtype": onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name}
                   for i in graph.input if i.name not in init_names],
        "outputs": [{"name": o.name, "shape": _dims(o), "dtype": onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type).name}
                    for o in graph.output],
        "nodes": len(graph.node),
        "operators": dict(Counter(n.op_type for n in graph.node).most_common()),
        "parameters": params,
        "parameter_mb": round(param_bytes / 2**20, 3),
        "metadata": json.loads(props[METADATA_KEY]) if METADATA_KEY in props else None,
        "metadata_props": {k: v for k, v in props.items() if k != METADATA_KEY},
    }
    if size is not None:
        info["flops"] = {"input_size": list(size), "gflops": round(count_flops(model, size) / 1e9, 3)}
    return info


def count_flops(model, size: tuple[int, int]) -> int:
    onnx = require("onnx", "counting FLOPs")
    ort = require("onnxruntime", "counting FLOPs")
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    graph = probe.graph
    counted = [n for n in graph.node if n.op_type in COUNTED]
    existing = {o.name for o in graph.output}
    for node in counted:
        if node.output[0] not in existing:
            graph.output.append(onnx.helper.make_empty_tensor_value_info(node.output[0]))
    weights = {t.name: tuple(t.dims) for t in graph.initializer}
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32
    outputs = session.run([n.output[0] for n in counted], {inp.name: np.zeros((1, 3, *size), dtype)})
    total = 0
    for node, out in zip(counted, outputs):
        w = weights.get(node.input[1])
        if node.op_type == "Conv" and w:
            total += 2 * int(np.prod(out.shape)) * int(np.prod(w[1:]))
        elif node.op_type == "ConvTranspose" and w:
            total += 2 * int(np.prod(out.shape[:1])) * int(np.prod(w)) * int(np.prod(out.shape[2:])) // max(1, int(np.prod(w[2:])))
        elif w:
            total += 2 * int(np.prod(out.shape)) * int(w[0])
    return total
