"""Describe the machine and software a benchmark ran on (numbers mean nothing without it): CPU model,
the instruction-set flags that decide which precision pays (AVX2, AVX-512, VNNI for INT8, BF16/AMX),
and the FP32 matrix-multiply peak measured here, so every table can say how close to the limit a
backend runs."""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from bcdeploy.versions import package_versions

# What decides the fastest correct backend on a CPU: AVX2 (baseline), AVX-512 (FP32 width), VNNI
# (INT8 dot products), AVX-512 BF16 and AMX (BF16/INT8 tiles). Names as Linux's /proc/cpuinfo spells them.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags(cpuinfo: str | None = None) -> dict[str, bool] | None:
    """{flag: present} for CPU_FLAGS, from the first processor's `flags` line; None where the
    platform does not say (no /proc/cpuinfo), which is not the same as 'absent'."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return {flag: flag in present for flag in CPU_FLAGS}
    return None


def flags_line(flags: dict[str, bool] | None) -> str:
    if flags is None:
        return "CPU flags unknown"
    have = [f for f, on in flags.items() if on]
    return "CPU flags: " + (" ".join(have) if have else "none of " + " ".join(CPU_FLAGS))


def gpu_name() -> str | None:
    try:
        from bcdeploy.runtime.backends import cuda

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
