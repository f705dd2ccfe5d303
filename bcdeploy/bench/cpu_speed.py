"""`bcdeploy bench cpu EXPORT_DIR`: each CPU variant of an export, timed on this machine, stored beside it.

Compute alone (the backend call on a preprocessed batch of one, at the model's own input size from its
sidecar), a few warm runs, the median: what decides which variant to run here. The result goes into
EXPORT_DIR/bcdeploy-speed.json under this machine's key (runtime/speed_record.py), where `infer`'s `cpu:`
line finds it. A variant whose backend cannot run here (not installed) is listed as skipped.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bcdeploy.errors import BcDeployError, InputError
from bcdeploy.runtime.backends.registry import SUFFIXES, backend_for

CPU_BACKENDS = ("onnxruntime", "openvino")


def measure_export(folder: Path, *, runs: int = 5, warmup: int = 2,
                   on_progress: Callable[[str, int], None] | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """({model file name: median compute ms}, {model file name: why skipped}) for the CPU models in `folder`."""
    from bcdeploy.bench.timing import measure
    from bcdeploy.runtime.segmenter import Segmenter

    folder = Path(folder)
    models = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and backend_for(p).name in CPU_BACKENDS)
    if not models:
        raise InputError(f"{folder}: no CPU model (.onnx, .xml) to measure")
    times, skipped = {}, {}
    for path in models:
        try:
            with Segmenter(path) as segmenter:
                height, width = segmenter.meta.input_size
                batch = np.random.default_rng(0).standard_normal((1, 3, height, width)).astype(np.float32)
                samples = measure(lambda: segmenter.raw_logits(batch), warmup=warmup, min_runs=runs, min_seconds=0.0,
                                  max_runs=runs)
                times[path.name] = statistics.median(samples)
        except BcDeployError as err:
            skipped[path.name] = str(err)
        if on_progress:
            on_progress(path.name, len(models))
    return times, skipped
