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
from bcdeploy.runtime.model.backends.base import Runner, TensorSpec
from bcdeploy.runtime.model.backends.options import ORT_PROVIDERS, OnnxRuntimeOptions
from bcdeploy.runtime.model.sidecar import METADATA_KEY

# onnxruntime's type strings -> numpy names ("tensor(float)" is float32).
_ORT_DTYPES = {"float": "float32", "double": "float64"}


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"
    options_type = OnnxRuntimeOptions
    options: OnnxRuntimeOptions

    def __init__(self, model_path: str | Path, options: OnnxRuntimeOptions | None = None) -> None:
        super().__init__(model_path, options)
        self.session = None

    def _providers(self, ort) -> list:
        provider = self.options.provider
        wanted = ORT_PROVIDERS[provider]
        available = ort.get_available_providers()
        if wanted not in available:
            hint = "pip install 'bcdeploy[ort-gpu]' (onnxruntime-gpu) and check CUDA" if provider != "cpu" else ""
            raise BackendError(f"onnxruntime provider {wanted} is not available (installed: {', '.join(available)}). {hint}".strip())
        device = {"device_id": self.options.device_id}
        if provider == "tensorrt":
            cache = self.options.trt_cache_dir or str(self.model_path.parent / "trt_cache")
            trt_opts = {**device, "trt_fp16_enable": self.options.trt_fp16, "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": cache}
            return [(wanted, trt_opts), ("CUDAExecutionProvider", device), "CPUExecutionProvider"]
        if provider == "cuda":
            return [(wanted, device), "CPUExecutionProvider"]
        return [wanted]

    def activate_impl(self) -> None:
        ort = require("onnxruntime", "running .onnx models")
        opts = ort.SessionOptions()
        if self.options.threads:
            opts.intra_op_num_threads = self.options.threads
        if not self.options.spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
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

    def input_specs(self) -> list[TensorSpec]:
        return [_spec(node) for node in self.session.get_inputs()]

    def output_specs(self) -> list[TensorSpec]:
        return [_spec(node) for node in self.session.get_outputs()]

    def embedded_metadata(self) -> str | None:
        return self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        provider = self.session.get_providers()[0] if self.session else ORT_PROVIDERS[self.options.provider]
        info = {"backend": self.name, "provider": provider, "version": ort.__version__,
                "threads": self.options.threads or "default"}
        if self.options.provider != "cpu":
            info["device_id"] = self.options.device_id
        if self.options.provider == "tensorrt":
            info["trt_fp16"] = self.options.trt_fp16
        return info


def _spec(node) -> TensorSpec:
    """A session input/output; symbolic or unknown dimensions (strings, None) are dynamic."""
    kind = node.type.removeprefix("tensor(").removesuffix(")")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (node.shape or ()))
    return TensorSpec(node.name, _ORT_DTYPES.get(kind, kind), shape)
