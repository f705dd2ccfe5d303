"""Model file suffix -> runner class, imported lazily so only the chosen backend is loaded.

A plain dict that refuses duplicates; an unknown suffix is an error that lists the known ones.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from bcdeploy.errors import InputError

_REGISTRY: dict[str, str] = {}


def register(suffix: str, target: str) -> None:
    """Map `suffix` to 'module:Class'. Registering a suffix twice is a programming error."""
    suffix = suffix.lower()
    if suffix in _REGISTRY:
        raise ValueError(f"suffix {suffix} is already registered to {_REGISTRY[suffix]}")
    _REGISTRY[suffix] = target


register(".onnx", "bcdeploy.runtime.backends.onnxruntime:OnnxRuntimeRunner")
register(".trt", "bcdeploy.runtime.backends.tensorrt:TensorRTRunner")
register(".engine", "bcdeploy.runtime.backends.tensorrt:TensorRTRunner")
register(".plan", "bcdeploy.runtime.backends.tensorrt:TensorRTRunner")
register(".xml", "bcdeploy.runtime.backends.openvino:OpenVINORunner")

SUFFIXES = tuple(_REGISTRY)


def runner_class_for(model_path: str | Path) -> type:
    suffix = Path(model_path).suffix.lower()
    target = _REGISTRY.get(suffix)
    if target is None:
        raise InputError(f"{model_path}: no backend for suffix {suffix or '(none)'!r}; "
                         f"known suffixes: {', '.join(sorted(_REGISTRY))}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def open_runner(model_path: str | Path, **options: Any):
    """Create and activate the runner for `model_path`."""
    return runner_class_for(model_path)(model_path, **options).activate()
