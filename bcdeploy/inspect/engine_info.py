"""Facts about a TensorRT engine: TensorRT's own inspector where TensorRT is installed, else the sidecar."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from bcdeploy.errors import ConfigError, InputError
from bcdeploy.runtime.model.sidecar import load_meta


def inspect_engine(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: engine file not found")
    info: dict = {"file": str(path), "size_mb": round(path.stat().st_size / 2**20, 3)}
    try:
        info["metadata"] = load_meta(path).to_dict()
    except ConfigError as err:
        info["metadata"] = None
        info["metadata_note"] = str(err)
    if importlib.util.find_spec("tensorrt") is None:
        info["inspector"] = "TensorRT is not installed here: showing the sidecar only"
        return info
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        info["inspector"] = f"TensorRT {trt.__version__} cannot deserialise it (other version or GPU)"
        return info
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    info["tensors"] = [{"name": n, "mode": str(engine.get_tensor_mode(n)), "shape": list(engine.get_tensor_shape(n)),
                        "dtype": str(engine.get_tensor_dtype(n))} for n in names]
    inspector = engine.create_engine_inspector()
    info["layers"] = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    info["inspector"] = f"TensorRT {trt.__version__}"
    return info
