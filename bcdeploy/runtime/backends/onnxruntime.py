"""onnxruntime backend: CPU, CUDA or TensorRT execution provider, chosen by option.

A provider that is not installed is an error naming the installed ones, never a silent fall-back
to CPU (a user benchmarking "CUDA" must not be timing the CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy._imports import require
from bcdeploy.errors import BackendError
from bcdeploy.runtime.backends.base import Runner
from bcdeploy.runtime.metadata import METADATA_KEY

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def __init__(self, model_path: str | Path, provider: str = "cpu", threads: int = 0,
                 trt_cache_dir: str | None = None, trt_fp16: bool = True, **options: Any) -> None:
        super().__init__(model_path, **options)
        if provider not in PROVIDERS:
            raise BackendError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
        self.provider = provider
        self.threads = threads
        self.trt_cache_dir = trt_cache_dir
        self.trt_fp16 = trt_fp16
        self.session = None

    def _providers(self, ort) -> list:
        wanted = PROVIDERS[self.provider]
        available = ort.get_available_providers()
        if wanted not in available:
            hint = "pip install 'bcdeploy[ort-gpu]' (onnxruntime-gpu) and check CUDA" if self.provider != "cpu" else ""
            raise BackendError(f"onnxruntime provider {wanted} is not available (installed: {', '.join(available)}). {hint}".strip())
        if self.provider == "tensorrt":
            cache = self.trt_cache_dir or str(self.model_path.parent / "trt_cache")
            trt_opts = {"trt_fp16_enable": self.trt_fp16, "trt_engine_cache_enable": True, "trt_engine_cache_path": cache}
            return [(wanted, trt_opts), "CUDAExecutionProvider", "CPUExecutionProvider"]
        if self.provider == "cuda":
            return [wanted, "CPUExecutionProvider"]
        return [wanted]

    def activate_impl(self) -> None:
        ort = require("onnxruntime", "running .onnx models")
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.model_path), opts, providers=self._providers(ort))
        except BackendError:
            raise
        except Exception as err:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
            raise BackendError(f"{self.model_path}: onnxruntime cannot load it ({str(err).splitlines()[0][:300]})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def deactivate_impl(self) -> None:
        self.session = None

    def embedded_metadata(self) -> str | None:
        return self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {"backend": self.name, "provider": self.session.get_providers()[0] if self.session else PROVIDERS[self.provider],
                "version": ort.__version__, "threads": self.threads or "default"}
