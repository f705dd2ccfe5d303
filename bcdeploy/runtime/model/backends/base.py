"""The runner interface every backend implements (after Polygraphy's BaseRunner).

`activate()` loads the session or engine, `infer(batch)` checks the input against what the model
declares and then calls the backend's `infer_impl`, `deactivate()` frees it. Runners are context
managers. Backends differ only in `activate_impl`/`infer_impl`/`deactivate_impl`; what goes in and
what comes out (float32 NCHW in, the model's output array out) is the same for all of them, so
parity differences can only come from the backend.

Each runner declares the options it takes as a keyword-only dataclass (`options_type`, see
options.py) and, once active, the model's own inputs and outputs (`input_specs`/`output_specs`), so
the sidecar can be checked against the model before any image is read.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bcdeploy.errors import BackendError, ConfigError, InputError
from bcdeploy.runtime.model.backends.options import BackendOptions


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the backend sees it."""

    name: str | None  # None where the format keeps no name
    dtype: str  # numpy name: float32, float16, int32, uint8, ...
    shape: tuple[int | None, ...]  # None for a dynamic dimension

    def __str__(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name or '(unnamed)'}: {self.dtype} [{dims}]"


class Runner(ABC):
    """Base class: subclasses set `name` and `options_type` and implement the *_impl and *_specs methods."""

    name: str = "runner"
    options_type: ClassVar[type[BackendOptions]] = BackendOptions

    def __init__(self, model_path: str | Path, options: BackendOptions | None = None) -> None:
        self.model_path = Path(model_path)
        if options is None:
            options = self.options_type()
        if not isinstance(options, self.options_type):
            raise ConfigError(f"{self.model_path}: the {self.name} backend takes {self.options_type.__name__}, "
                              f"not {type(options).__name__}")
        self.options = options
        self.is_active = False
        self.last_infer_ms = 0.0

    # --- lifecycle -------------------------------------------------------------------------
    def activate(self) -> "Runner":
        if self.is_active:
            return self
        if not self.model_path.is_file():
            raise InputError(f"{self.model_path}: model file not found")
        self.activate_impl()
        self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    # --- inference -------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one (N,3,H,W) float32 batch; returns the model's output as a numpy array."""
        if not self.is_active:
            raise BackendError(f"{self.name}: runner is not active; call activate() first")
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise InputError(f"{self.name}: expected an (N,3,H,W) batch, got shape {batch.shape}")
        if batch.dtype != np.float32:
            raise InputError(f"{self.name}: expected float32 input, got {batch.dtype}")
        start = time.perf_counter()
        out = self.infer_impl(np.ascontiguousarray(batch))
        self.last_infer_ms = (time.perf_counter() - start) * 1000.0
        return out

    @property
    def concurrency(self) -> int:
        """How many `infer` calls this runner serves at once, each from its own thread, faster together
        than one after the other (OpenVINO's streams). 1: calls are taken one at a time."""
        return 1

    @abstractmethod
    def input_specs(self) -> list[TensorSpec]:
        """The model's inputs (the runner must be active)."""

    @abstractmethod
    def output_specs(self) -> list[TensorSpec]:
        """The model's outputs (the runner must be active)."""

    def embedded_metadata(self) -> str | None:
        """The bcdeploy JSON stored inside the model file, where the format can hold one."""
        return None

    def describe(self) -> dict[str, Any]:
        """Backend, versions and device, for reports."""
        return {"backend": self.name}

    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def infer_impl(self, batch: np.ndarray) -> np.ndarray: ...

    def deactivate_impl(self) -> None:
        return None
