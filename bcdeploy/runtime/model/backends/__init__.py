"""Inference backends behind one small interface (base.Runner), chosen by file suffix (registry).

Each backend declares its options as a keyword-only dataclass (options.py); the registry is the one
place that maps files to backends and says which options each takes.
"""

from bcdeploy.runtime.model.backends.options import BackendOptions, OnnxRuntimeOptions, OpenVINOOptions, TensorRTOptions
from bcdeploy.runtime.model.backends.registry import (
    SUFFIXES,
    Backend,
    backend_for,
    backends,
    model_files,
    open_runner,
    option_choices,
    options_for,
    runner_class_for,
)

__all__ = ["SUFFIXES", "Backend", "BackendOptions", "OnnxRuntimeOptions", "OpenVINOOptions", "TensorRTOptions",
           "backend_for", "backends", "model_files", "open_runner", "option_choices", "options_for",
           "runner_class_for"]
