"""Inference backends behind one small interface (base.Runner), chosen by file suffix (registry)."""

from bcdeploy.runtime.backends.registry import SUFFIXES, open_runner, runner_class_for

__all__ = ["open_runner", "runner_class_for", "SUFFIXES"]
