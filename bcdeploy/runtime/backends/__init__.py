"""Inference backends behind one small interface (base.Runner), chosen by file suffix (registry)."""

from bcdeploy.runtime.backends.registry import open_runner, runner_class_for, SUFFIXES

__all__ = ["open_runner", "runner_class_for", "SUFFIXES"]
