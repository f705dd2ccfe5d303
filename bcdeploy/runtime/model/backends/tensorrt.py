"""Native TensorRT backend, written against TensorRT 10/11's named-tensor API.

TensorRT 10 removed bindings: shapes go through `set_input_shape`, buffers through
`set_tensor_address`, execution through `execute_async_v3`. Device memory comes from our ctypes
CUDA wrapper, so neither torch nor pycuda is needed. An engine runs only on the TensorRT version and
GPU architecture that built it: the sidecar records both and we say so before deserialising.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy._imports import require
from bcdeploy.errors import BackendError, InputError
from bcdeploy.runtime.model.backends import cuda
from bcdeploy.runtime.model.backends.base import Runner, TensorSpec
from bcdeploy.runtime.model.backends.options import TensorRTOptions


class TensorRTRunner(Runner):
    name = "tensorrt"
    options_type = TensorRTOptions
    options: TensorRTOptions

    def __init__(self, model_path: str | Path, options: TensorRTOptions | None = None) -> None:
        super().__init__(model_path, options)
        self.engine = None

    def activate_impl(self) -> None:
        trt = require("tensorrt", "running TensorRT engines")
        count = cuda.device_count()
        if count == 0:
            raise BackendError(f"{self.model_path}: TensorRT engines need an NVIDIA GPU; none is visible")
        if self.options.device_id >= count:
            raise BackendError(f"{self.model_path}: GPU {self.options.device_id} asked for, {count} visible "
                               f"(device ids 0..{count - 1})")
        # The engine, its context, stream and buffers all belong to the current device of this thread.
        cuda.set_device(self.options.device_id)
        self._check_built_here(trt)
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.model_path.read_bytes())
        if self.engine is None:
            raise BackendError(f"{self.model_path}: TensorRT {trt.__version__} cannot deserialise this engine "
                               "(built by another TensorRT version or for another GPU?); rebuild it with `bcdeploy build-engine`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise BackendError(f"{self.model_path}: expected one input and one output, got {self.inputs} / {self.outputs}")
        self.stream = cuda.Stream()
        self.buffers = {n: cuda.DeviceBuffer() for n in names}

    def _check_built_here(self, trt) -> None:
        """Refuse, before deserialising, an engine its sidecar says was built elsewhere (the sidecar is
        read as every sidecar is: bounded and schema-checked; a malformed one is one ConfigError line)."""
        from bcdeploy.runtime.model.sidecar import read_sidecar_of

        found = read_sidecar_of(self.model_path)
        engine_info = found[1].engine if found else None
        why = built_elsewhere(engine_info if isinstance(engine_info, dict) else {}, trt.__version__,
                              cuda.compute_capability(self.options.device_id))
        if why:
            raise BackendError(f"{self.model_path}: {why}; rebuild the engine here (`bcdeploy export --engine`)")

    def _spec(self, name: str) -> TensorSpec:
        shape = tuple(d if d >= 0 else None for d in self.engine.get_tensor_shape(name))
        return TensorSpec(name, np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name))).name, shape)

    def input_specs(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self.inputs]

    def output_specs(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self.outputs]

    def profile(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes of optimisation profile 0."""
        return tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(self.inputs[0], 0))

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        name_in, name_out = self.inputs[0], self.outputs[0]
        low, _, high = self.profile()
        if any(b < lo or b > hi for b, lo, hi in zip(batch.shape, low, high)):
            raise InputError(f"{self.model_path}: input shape {batch.shape} is outside the engine's profile "
                             f"{low}..{high}; rebuild with a wider profile or use --sliding-window")
        self.context.set_input_shape(name_in, tuple(batch.shape))
        out_shape = tuple(self.context.get_tensor_shape(name_out))
        out = np.empty(out_shape, dtype=self.trt.nptype(self.engine.get_tensor_dtype(name_out)))
        self.buffers[name_in].copy_from(batch, self.stream)
        self.buffers[name_out].ensure(out.nbytes)
        self.context.set_tensor_address(name_in, self.buffers[name_in].address)
        self.context.set_tensor_address(name_out, self.buffers[name_out].address)
        if not self.context.execute_async_v3(self.stream.handle.value):
            raise BackendError(f"{self.model_path}: TensorRT execution failed")
        self.buffers[name_out].copy_to(out, self.stream)
        self.stream.synchronize()
        return out

    def deactivate_impl(self) -> None:
        for buffer in self.buffers.values():
            buffer.free()
        self.stream.free()
        self.context = self.engine = self.runtime = None

    def describe(self) -> dict[str, Any]:
        device = self.options.device_id
        return {"backend": self.name, "version": self.trt.__version__, "device_id": device, "gpu": cuda.device_name(device),
                "compute_capability": cuda.compute_capability(device), "profile": self.profile() if self.engine else None}


def built_elsewhere(engine_info: dict[str, Any], tensorrt_version: str, compute_capability: str) -> str | None:
    """Why an engine whose sidecar says `engine_info` cannot run here, or None. A serialised engine is tied
    to the exact TensorRT release that built it (not just its major version: 10.3 refuses a 10.1 engine)
    and to the GPU's compute capability; facts the sidecar does not record are not guessed."""
    built = engine_info.get("tensorrt_version")
    if built and str(built) != tensorrt_version:
        return f"built with TensorRT {built}, this is TensorRT {tensorrt_version}"
    capability = engine_info.get("compute_capability")
    if capability and str(capability) != compute_capability:
        gpu = engine_info.get("gpu") or "another GPU"
        return f"built for compute capability {capability} ({gpu}), this GPU has {compute_capability}"
    return None
