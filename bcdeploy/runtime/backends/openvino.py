"""OpenVINO backend for Intel/AMD CPU edge boxes (IR .xml beside its .bin).

`precision="bf16"` sets OpenVINO's inference precision hint: on CPUs with AVX-512 BF16/AMX it
roughly halves latency with the same masks (see benchmarks/); "fp32" keeps full precision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy._imports import require
from bcdeploy.errors import BackendError
from bcdeploy.runtime.backends.base import Runner


class OpenVINORunner(Runner):
    name = "openvino"

    def __init__(self, model_path: str | Path, device: str = "CPU", precision: str = "fp32", threads: int = 0, **options: Any) -> None:
        super().__init__(model_path, **options)
        if precision not in ("fp32", "bf16", "fp16"):
            raise BackendError(f"OpenVINO precision must be fp32, bf16 or fp16, not {precision!r}")
        self.device = device.upper()
        self.precision = precision
        self.threads = threads
        self.compiled = None

    def activate_impl(self) -> None:
        ov = require("openvino", "running OpenVINO .xml models")
        core = ov.Core()
        if self.device not in core.available_devices:
            raise BackendError(f"OpenVINO device {self.device} not available (have: {', '.join(core.available_devices)})")
        config = {"INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[self.precision]}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        try:
            model = core.read_model(str(self.model_path))
            self.compiled = core.compile_model(model, self.device, config)
        except RuntimeError as err:
            raise BackendError(f"{self.model_path}: OpenVINO cannot load it ({str(err).splitlines()[0][:300]})") from None
        self.request = self.compiled.create_infer_request()

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: batch})
        return np.asarray(next(iter(result.values())))

    def deactivate_impl(self) -> None:
        self.compiled = None
        self.request = None

    def describe(self) -> dict[str, Any]:
        import openvino as ov

        return {"backend": self.name, "device": self.device, "precision": self.precision, "version": ov.__version__}
