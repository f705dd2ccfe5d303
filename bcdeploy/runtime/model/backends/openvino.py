"""OpenVINO backend for Intel/AMD CPU edge boxes (IR .xml beside its .bin).

`precision="bf16"` sets OpenVINO's inference precision hint: on CPUs with AVX-512 BF16/AMX it
roughly halves latency with the same masks (see benchmarks/); "fp32" keeps full precision.

`hint="throughput"` compiles OpenVINO's streams (as many as it finds best for this CPU): the runner
then holds one infer request per stream and serves that many `infer` calls at once, one per thread
(`concurrency`); the run loop segments that many images together. "latency" (and "auto" outside a
run, which settles it: options.for_run) is one stream with every thread on one image.
"""

from __future__ import annotations

import queue
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bcdeploy._imports import require
from bcdeploy.errors import BackendError
from bcdeploy.runtime.model.backends.base import Runner, TensorSpec
from bcdeploy.runtime.model.backends.options import OpenVINOOptions
from bcdeploy.runtime.model.sidecar import METADATA_KEY

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_PERFORMANCE_HINTS = {"auto": "LATENCY", "latency": "LATENCY", "throughput": "THROUGHPUT"}


class OpenVINORunner(Runner):
    name = "openvino"
    options_type = OpenVINOOptions
    options: OpenVINOOptions

    def __init__(self, model_path: str | Path, options: OpenVINOOptions | None = None) -> None:
        super().__init__(model_path, options)
        self.compiled = None
        self._embedded: str | None = None
        self._requests: queue.SimpleQueue = queue.SimpleQueue()  # idle infer requests, one per stream
        self._concurrency = 1

    def activate_impl(self) -> None:
        ov = import_runtime()
        core = ov.Core()
        device = self.options.device
        if device not in core.available_devices:
            raise BackendError(f"OpenVINO device {device} not available (have: {', '.join(core.available_devices)})")
        config = {"INFERENCE_PRECISION_HINT": _HINTS[self.options.precision],
                  "PERFORMANCE_HINT": _PERFORMANCE_HINTS[self.options.hint]}
        if self.options.threads:
            config["INFERENCE_NUM_THREADS"] = str(self.options.threads)
        try:
            model = core.read_model(str(self.model_path))
            self._embedded = _embedded(model)
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as err:
            raise BackendError(f"{self.model_path}: OpenVINO cannot load it ({str(err).splitlines()[0][:300]})") from None
        self._concurrency = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        for _ in range(self._concurrency):
            self._requests.put(self.compiled.create_infer_request())

    @property
    def concurrency(self) -> int:
        return self._concurrency

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        request = self._requests.get()  # a caller beyond `concurrency` waits for a free stream
        try:
            result = request.infer({0: batch})
            # copied out: the request's output buffer is reused by its next image, on another thread
            return np.array(next(iter(result.values())))
        finally:
            self._requests.put(request)

    def deactivate_impl(self) -> None:
        self.compiled = None
        self._requests = queue.SimpleQueue()
        self._concurrency = 1

    def embedded_metadata(self) -> str | None:
        return self._embedded

    def input_specs(self) -> list[TensorSpec]:
        return [_spec(port) for port in self.compiled.inputs]

    def output_specs(self) -> list[TensorSpec]:
        return [_spec(port) for port in self.compiled.outputs]

    def describe(self) -> dict[str, Any]:
        ov = import_runtime()
        return {"backend": self.name, "device": self.options.device, "precision": self.options.precision,
                "threads": self.options.threads or "default", "hint": self.options.hint, "version": ov.__version__}


_CONVERTER = "openvino.tools.ovc"


def import_runtime() -> ModuleType:
    """OpenVINO's runtime without its model converter.

    `import openvino` also imports the converter (openvino.tools.ovc), and that import sends a usage
    event to Google Analytics unless the user opted out beforehand (no consent file counts as yes): it
    forks the process to send it, waits up to 3 s for the fork, and writes a client id under ~/intel/.
    A node in a hospital must not phone home, fork a process that holds an inference engine's threads,
    or write into the home folder of the account it runs as; and running a model needs no converter.
    A None entry in sys.modules is Python's documented way to make an import fail, which openvino's
    __init__ expects (the converter is optional there); the entry is removed again, so an export later
    in the same process still imports the converter (`bcdeploy export --openvino`, the user's own step).
    Loading without the converter also halves the import time (0.30 -> 0.14 s here).
    """
    if "openvino" in sys.modules or _CONVERTER in sys.modules:
        return require("openvino", "running OpenVINO .xml models")
    sys.modules[_CONVERTER] = None  # type: ignore[assignment]
    try:
        return require("openvino", "running OpenVINO .xml models")
    finally:
        if sys.modules.get(_CONVERTER, "") is None:
            del sys.modules[_CONVERTER]


def _spec(port) -> TensorSpec:
    names = port.get_names()
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorSpec(sorted(names)[0] if names else None, str(port.get_element_type().to_dtype()), shape)


def _embedded(model: Any) -> str | None:
    """The description export embedded in the ONNX the IR was converted from: OpenVINO's ONNX frontend
    keeps ONNX metadata in rt_info under `framework`, and save_model writes it into the .xml."""
    path = ["framework", METADATA_KEY]
    try:
        return str(model.get_rt_info(path).astype(str)) if model.has_rt_info(path) else None
    except RuntimeError:
        return None
