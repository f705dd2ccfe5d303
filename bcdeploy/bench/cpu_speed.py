"""`bcdeploy bench cpu EXPORT_DIR`: each CPU variant of an export, timed on this machine, stored beside it.

Compute alone (the backend call on a preprocessed batch of one, at the model's own input size from its
sidecar), a few warm runs, the median: what decides which variant to run here. The result goes into
EXPORT_DIR/bcdeploy-speed.json under this machine's key (runtime/model/speed_record.py), where `infer`'s `cpu:`
line finds it. A variant whose backend cannot run here (not installed) is listed as skipped.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bcdeploy.errors import BcDeployError, InputError
from bcdeploy.runtime.model.backends.options import BackendOptions
from bcdeploy.runtime.model.backends.registry import SUFFIXES, backend_for, options_for
from bcdeploy.runtime.model.variants import other_precisions, variant_name

CPU_BACKENDS = ("onnxruntime", "openvino")


def measure_export(folder: Path, *, runs: int = 5, warmup: int = 2,
                   on_progress: Callable[[str, int], None] | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """({variant name: median compute ms}, {variant name: why skipped}) for the CPU models in `folder`: each
    file's name, and `model.xml#bf16` for an FP32 IR run at BF16 (variants.variant_name)."""
    from bcdeploy.bench.timing import measure
    from bcdeploy.runtime.model.segmenter import Segmenter

    folder = Path(folder)
    models = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and backend_for(p).name in CPU_BACKENDS)
    if not models:
        raise InputError(f"{folder}: no CPU model (.onnx, .xml) to measure")
    times, skipped = {}, {}
    for path in models:
        for name, options in [(path.name, None), *_reduced_precisions(path)]:
            try:
                with Segmenter(path, options=options) as segmenter:
                    height, width = segmenter.meta.input_size
                    batch = np.random.default_rng(0).standard_normal((1, 3, height, width)).astype(np.float32)
                    samples = measure(lambda: segmenter.raw_logits(batch), warmup=warmup, min_runs=runs,
                                      min_seconds=0.0, max_runs=runs)
                    times[name] = statistics.median(samples)
            except BcDeployError as err:
                skipped[name] = str(err)
        if on_progress:
            on_progress(path.name, len(models))
    return times, skipped


def _reduced_precisions(path: Path) -> list[tuple[str, BackendOptions]]:
    """The variants of `path` at another precision (variants.other_precisions), with their options: an FP32
    OpenVINO IR at BF16. Where BF16 instructions exist it about halves FP32 time; where they do not,
    OpenVINO emulates them: 9x slower than FP32 on a 2-core AVX-512 VNNI Xeon
    (benchmarks/results/cpu-avx512-vnni/compute.md). Only a measurement tells a user which their CPU is."""
    from bcdeploy.runtime.model.sidecar import find_sidecar, read_sidecar

    try:
        sidecar = find_sidecar(path)
        precision = read_sidecar(sidecar).precision if sidecar is not None else None
    except (BcDeployError, OSError):
        return []  # the file's own measurement says why
    found = []
    for other in other_precisions(backend_for(path).name, precision or ""):
        options = options_for(path, precision=other)
        found.append((variant_name(path, options), options))
    return found
