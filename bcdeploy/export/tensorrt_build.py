"""Build TensorRT engines from ONNX, written for TensorRT 10 and 11.

* Precision: TensorRT 11 removed weakly typed networks and `BuilderFlag.FP16`, so FP16 lives in the
  ONNX (fp16.py) and the network is created STRONGLY_TYPED; TensorRT 10 gets the same strongly
  typed FP16 ONNX, which keeps both versions numerically alike and lets CPU parity of the FP16 ONNX
  predict the engine's. FP32 builds the FP32 ONNX. INT8 with a calibrator exists only up to
  TensorRT 10 (implicit quantisation was removed in 11): there we say so and point to QDQ ONNX.
* One optimisation profile min/opt/max on the input (from the deploy config), a workspace limit, and
  a timing cache file reused across builds (valid for one GPU / CUDA / TensorRT combination).
* The engine runs only where it was built: TensorRT version, GPU and compute capability go into the
  engine's sidecar.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from bcdeploy._imports import require
from bcdeploy.errors import BackendError, ConfigError
from bcdeploy.fileio import atomic_path, write_bytes

log = logging.getLogger(__name__)
PRECISIONS = ("fp16", "fp32", "int8")


def trt_major(version: str) -> int:
    return int(version.split(".")[0])


def network_flags(trt, precision: str) -> int:
    """STRONGLY_TYPED where the TensorRT has it; EXPLICIT_BATCH only for the TensorRT 8 era."""
    flags = 0
    names = trt.NetworkDefinitionCreationFlag.__members__
    if precision != "int8" and "STRONGLY_TYPED" in names:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif "EXPLICIT_BATCH" in names and trt_major(trt.__version__) < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return flags


def check_precision(trt_version: str, precision: str) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "int8" and trt_major(trt_version) >= 11:
        raise BackendError(f"TensorRT {trt_version} removed implicit INT8 calibration; quantise the ONNX with "
                           "QDQ nodes (onnxruntime.quantization) and build it as fp32/strongly typed instead")


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    profile: dict[str, list[int]],
    precision: str = "fp16",
    workspace_bytes: int = 4 << 30,
    timing_cache: str | Path | None = None,
    calibration_batches: Callable[[], Iterable[np.ndarray]] | None = None,
) -> dict:
    """Build and write the engine; returns what goes into its sidecar's `engine` section."""
    trt = require("tensorrt", "building TensorRT engines")
    from bcdeploy.runtime.backends import cuda

    if cuda.device_count() == 0:
        raise BackendError("building a TensorRT engine needs an NVIDIA GPU; none is visible")
    check_precision(trt.__version__, precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, precision))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors[:500]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(network.get_input(0).name, profile["min"], profile["opt"], profile["max"])
    config.add_optimization_profile(opt_profile)
    strongly_typed = bool(network_flags(trt, precision))
    if precision == "fp16" and not strongly_typed and hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)  # weakly typed TensorRT (< 9) only
    calibrator = None
    if precision == "int8":
        if calibration_batches is None:
            raise ConfigError("INT8 needs calibration images (--calib-images DIR)")
        config.set_flag(trt.BuilderFlag.INT8)
        calibrator = _make_calibrator(trt, calibration_batches, Path(engine_path).with_suffix(".calib"))
        config.int8_calibrator = calibrator
        config.set_calibration_profile(opt_profile)
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


def _make_calibrator(trt, batches: Callable[[], Iterable[np.ndarray]], cache_file: Path):
    """An entropy calibrator fed by numpy batches through the ctypes CUDA wrapper (TensorRT <= 10)."""
    from bcdeploy.runtime.backends import cuda

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.iterator = iter(batches())
            self.buffer, self.stream = cuda.DeviceBuffer(), cuda.Stream()
            self.batch_size = 1

        def get_batch_size(self) -> int:
            return self.batch_size

        def get_batch(self, names):  # noqa: ANN001 - TensorRT's signature
            batch = next(self.iterator, None)
            if batch is None:
                return None
            batch = np.ascontiguousarray(batch, np.float32)
            self.batch_size = batch.shape[0]
            self.buffer.copy_from(batch, self.stream)
            self.stream.synchronize()
            return [self.buffer.address]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            with atomic_path(cache_file) as tmp:
                tmp.write_bytes(bytes(cache))

    return Calibrator()
