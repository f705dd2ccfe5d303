"""Describe the machine and software a benchmark ran on (numbers mean nothing without it): CPU model,
the instruction-set flags (what a CPU can do; how fast a variant runs is measured by `bench cpu`) (AVX2, AVX-512, VNNI for INT8, BF16/AMX),
and the FP32 matrix-multiply peak measured here, so every table can say how close to the limit a
backend runs. The flags are read by bcdeploy.runtime.model.cpu, the one place that knows them (`infer`
uses it too)."""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from bcdeploy.runtime.model.cpu import CPU_FLAGS, cpu_flags, cpu_model, flags_line
from bcdeploy.versions import package_versions

__all__ = ["CPU_FLAGS", "cpu_flags", "cpu_model", "describe", "flags_line", "gpu_name", "matmul_peak"]


def gpu_name() -> str | None:
    try:
        from bcdeploy.runtime.model.backends import cuda

        return cuda.device_name() if cuda.device_count() else None
    except Exception:  # noqa: BLE001 - no CUDA runtime means no GPU to report
        return None


def matmul_peak(n: int = 1024, seconds: float = 0.5) -> dict:
    """Best FP32 GFLOP/s of an n x n x n matrix multiply, by numpy's BLAS and, when installed, by
    onnxruntime's MatMul (MLAS, the sgemm its Conv kernels use), each for ~`seconds` after a warm-up.
    The higher of the two is the machine's peak as far as these backends can reach it."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    flop = 2.0 * n ** 3
    result = {"n": n, "numpy_gflops": round(flop / _best_seconds(lambda: a @ b, seconds) / 1e9, 1)}
    ort_run = _ort_matmul(n)
    if ort_run is not None:
        result["onnxruntime_gflops"] = round(flop / _best_seconds(lambda: ort_run(a, b), seconds) / 1e9, 1)
    result["peak_gflops"] = max(v for k, v in result.items() if k.endswith("_gflops"))
    return result


def _best_seconds(fn, seconds: float) -> float:
    fn()
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds or best == float("inf"):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _ort_matmul(n: int):
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        return None
    h = onnx.helper
    spec = [h.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [n, n]) for name in ("a", "b", "c")]
    graph = h.make_graph([h.make_node("MatMul", ["a", "b"], ["c"])], "sgemm", spec[:2], spec[2:])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda a, b: session.run(None, {"a": a, "b": b})


def describe(peak: bool = False) -> dict:
    """The machine line of every bench JSON; `peak=True` also measures the FP32 matmul peak (~1 s)."""
    packages = package_versions("bcdeploy", "numpy", "opencv-python-headless", "imagecodecs", "onnxruntime",
                                "onnxruntime-gpu", "openvino", "tensorrt", "torch", "mmsegmentation")
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "gpu": gpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
    }
    if peak:
        info["fp32_matmul"] = matmul_peak()
    return info
