"""Describe the machine and software a benchmark ran on (numbers mean nothing without it)."""

from __future__ import annotations

import os
import platform

from bcdeploy.versions import package_versions


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpu_name() -> str | None:
    try:
        from bcdeploy.runtime.backends import cuda

        return cuda.device_name() if cuda.device_count() else None
    except Exception:  # noqa: BLE001 - no CUDA runtime means no GPU to report
        return None


def describe() -> dict:
    packages = package_versions("bcdeploy", "numpy", "opencv-python-headless", "onnxruntime", "onnxruntime-gpu",
                                "openvino", "tensorrt", "torch", "mmsegmentation")
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": gpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
    }
