"""Build TensorRT engines from ONNX, written for TensorRT 10 and 11.

* Precision lives in the ONNX, and the network is created STRONGLY_TYPED: TensorRT 11 removed weakly
  typed networks and the FP16/INT8 builder flags. FP32 builds model.onnx, FP16 model.fp16.onnx (fp16.py)
  and INT8 model.int8.onnx, a QDQ graph (explicit quantisation: the Q/DQ scales decide, no
  calibrator; implicit calibration was deprecated in 10 and removed in 11). TensorRT takes only
  symmetric INT8 Q/DQ (zero point 0), so that file must be quantised for it (`export --engine
  --precision int8` does). CPU parity of each ONNX predicts its engine's.
* One optimisation profile min/opt/max on the input (from the deploy config, else derived from the
  model's input size), a workspace limit, and a timing cache file reused across builds (valid for one
  GPU / CUDA / TensorRT combination).
* The engine runs only where it was built: TensorRT version, GPU and compute capability go into the
  engine's sidecar.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bcdeploy._imports import require
from bcdeploy.errors import BackendError, ConfigError
from bcdeploy.fileio import write_bytes
from bcdeploy.runtime.model.sidecar import ModelMeta

log = logging.getLogger(__name__)
PRECISIONS = ("fp16", "fp32", "int8")
# Which exported ONNX each engine precision is built from.
ENGINE_SOURCES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
DEFAULT_WORKSPACE = 4 << 30
DEFAULT_MAX_SIDE = 2048  # the largest side of the default profile (mammograms are resized below it)
DEFAULT_MAX_BATCH = 4


def trt_major(version: str) -> int:
    return int(version.split(".")[0])


def network_flags(trt) -> int:
    """STRONGLY_TYPED where the TensorRT has it (>= 9.x); EXPLICIT_BATCH only for the TensorRT 8 era."""
    names = trt.NetworkDefinitionCreationFlag.__members__
    if "STRONGLY_TYPED" in names:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if "EXPLICIT_BATCH" in names and trt_major(trt.__version__) < 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def engine_precision(requested: str | None, *, fp16_mode: bool | None = None, int8_mode: bool = False) -> str:
    """The engine precision from --precision and the deploy config's common_config, which must agree."""
    if requested is not None and requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    from_config = "int8" if int8_mode else {True: "fp16", False: "fp32", None: None}[fp16_mode]
    if requested and from_config and requested != from_config and not (requested == "int8" and fp16_mode):
        field = "int8_mode=True" if int8_mode else f"fp16_mode={fp16_mode}"
        raise ConfigError(f"--precision {requested} contradicts the deploy config's backend_config.common_config."
                          f"{field}; drop one of them")
    return requested or from_config or "fp16"


def check_engine_source(meta: ModelMeta, precision: str, onnx_path: str | Path) -> None:
    """The ONNX must already be in the engine's precision (strongly typed networks take it from the graph),
    and an INT8 one must be quantised as TensorRT takes it (symmetric, zero point 0)."""
    if meta.precision != precision:
        raise ConfigError(f"{onnx_path} is a {meta.precision} model; a {precision} engine builds from "
                          f"{ENGINE_SOURCES[precision]} (written by `bcdeploy export`), or drop --precision")
    if precision == "int8" and not meta.export.get("quantization", {}).get("symmetric", False):
        raise ConfigError(f"{onnx_path} was quantised for onnxruntime on CPU (asymmetric uint8 activations); TensorRT "
                          "takes only symmetric INT8 Q/DQ: re-export with `bcdeploy export --engine --precision int8`")


def default_profile(input_size: list[int] | tuple[int, int], size_divisor: int) -> dict[str, list[int]]:
    """min/opt/max NCHW derived from the model: opt is its input size (what the runtime feeds, padded to
    the divisor), min the smallest input the network takes, max at least 2048 px a side. min <= opt <= max."""
    step = max(1, int(size_divisor))
    opt = [-(-int(v) // step) * step for v in input_size]
    largest = [max(v, -(-DEFAULT_MAX_SIDE // step) * step) for v in opt]
    return {"min": [1, 3, step, step], "opt": [1, 3, *opt], "max": [DEFAULT_MAX_BATCH, 3, *largest]}


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    profile: dict[str, list[int]],
    precision: str = "fp16",
    workspace_bytes: int = DEFAULT_WORKSPACE,
    timing_cache: str | Path | None = None,
) -> dict:
    """Build and write the engine; returns what goes into its sidecar's `engine` section."""
    trt = require("tensorrt", "building TensorRT engines")
    from bcdeploy.runtime.model.backends import cuda

    if cuda.device_count() == 0:
        raise BackendError("building a TensorRT engine needs an NVIDIA GPU; none is visible")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = network_flags(trt)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors[:500]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(network.get_input(0).name, profile["min"], profile["opt"], profile["max"])
    config.add_optimization_profile(opt_profile)
    strongly_typed = bool(flags) and "STRONGLY_TYPED" in trt.NetworkDefinitionCreationFlag.__members__
    if not strongly_typed and precision != "fp32":  # weakly typed (TensorRT 8): flags; QDQ needs INT8 set
        config.set_flag(trt.BuilderFlag.FP16 if precision == "fp16" else trt.BuilderFlag.INT8)
    cache = _load_timing_cache(config, timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"{onnx_path}: TensorRT failed to build the engine (see its log above)")
    write_bytes(engine_path, bytes(serialized))
    if timing_cache and cache is not None:
        write_bytes(timing_cache, bytes(cache.serialize()))
    return {
        "tensorrt_version": trt.__version__,
        "gpu": cuda.device_name(),
        "compute_capability": cuda.compute_capability(),
        "precision": precision,
        "strongly_typed": strongly_typed,
        "profile": profile,
        "workspace_bytes": int(workspace_bytes),
        "timing_cache": str(timing_cache) if timing_cache else None,
    }


def _load_timing_cache(config, path: str | Path | None):
    if not path:
        return None
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache
