"""`bcdeploy export --triton REPO`: a Triton Inference Server model repository.

Layout (Triton's): REPO/<name>/config.pbtxt and REPO/<name>/1/model.onnx (or model.plan). The graph
takes the normalised tensor, so pre/postprocessing run on the client with bcdeploy's runtime (the
same numpy code as `bcdeploy infer`, see README "Serving on Triton"); the model's sidecar is copied
beside config.pbtxt for those clients. Dynamic batching is on, dims are -1 where the graph is dynamic.
"""

from __future__ import annotations

from pathlib import Path

from bcdeploy.errors import InputError
from bcdeploy.fileio import copy_atomic, write_text
from bcdeploy.runtime.model.sidecar import ModelMeta

_DTYPES = {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8", "int32": "TYPE_INT32"}


def config_pbtxt(name: str, meta: ModelMeta, platform: str, max_batch: int = 8, instance_kind: str = "KIND_GPU",
                 instances: int = 1) -> str:
    """The text-format ModelConfig. `platform` is onnxruntime_onnx or tensorrt_plan."""
    out_channels = meta.num_classes if meta.output_kind == "logits" else 1
    preferred = [b for b in (2, 4, 8, 16) if b <= max_batch] or [max_batch]
    return "\n".join([
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {max_batch}",
        "input [",
        "  {",
        f'    name: "{meta.input_name}"',
        "    data_type: TYPE_FP32",
        "    dims: [ 3, -1, -1 ]",
        "  }",
        "]",
        "output [",
        "  {",
        f'    name: "{meta.output_name}"',
        f"    data_type: {_DTYPES[meta.output_dtype]}",
        f"    dims: [ {out_channels}, -1, -1 ]",
        "  }",
        "]",
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
        "  max_queue_delay_microseconds: 2000",
        "}",
        "instance_group [",
        "  {",
        f"    count: {instances}",
        f"    kind: {instance_kind}",
        "  }",
        "]",
        "",
    ])


def write_triton_repo(repo: str | Path, model_file: str | Path, meta: ModelMeta, name: str = "bcdeploy_segmenter",
                      max_batch: int = 8, instance_kind: str = "KIND_GPU") -> Path:
    """Copy `model_file` (.onnx or .trt/.plan) into a Triton repository; returns the model folder."""
    model_file = Path(model_file)
    if model_file.suffix == ".onnx":
        platform, target = "onnxruntime_onnx", "model.onnx"
    elif model_file.suffix in (".trt", ".plan", ".engine"):
        platform, target = "tensorrt_plan", "model.plan"
    else:
        raise InputError(f"{model_file}: Triton repositories take .onnx or TensorRT engines")
    folder = Path(repo) / name
    copy_atomic(model_file, folder / "1" / target)
    write_text(folder / "config.pbtxt", config_pbtxt(name, meta, platform, max_batch, instance_kind))
    write_text(folder / "bcdeploy.json", meta.to_json() + "\n")
    return folder
