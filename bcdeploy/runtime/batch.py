"""Kept for callers of the old module: the run loop lives in `bcdeploy.runtime.run`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bcdeploy.runtime.run import RunOptions, RunSummary, find_inputs, run

__all__ = ["RunOptions", "RunSummary", "collect_inputs", "run"]


def collect_inputs(inputs: Sequence[str], recursive: bool = False) -> tuple[list[Path], list[dict]]:
    """Image paths (resolved, in order) and failures for arguments that give nothing (`bench` uses it)."""
    items, failures = find_inputs(inputs, recursive)
    return [item.source for item in items], [{"file": f.item, "error": f.error} for f in failures]
