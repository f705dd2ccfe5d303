"""`bcdeploy bench latency`: model compute and end-to-end latency per backend, precision, batch and
size, with MMSeg's own `inference_model` as the anchor so speed-ups are ratios from the same run."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bcdeploy.bench.models import ModelSpec, open_segmenter, precision_of
from bcdeploy.bench.sysinfo import describe
from bcdeploy.bench.timing import measure, summarize
from bcdeploy.runtime.imageio import read_image

log = logging.getLogger(__name__)
STAGES = ("decode", "preprocess", "infer", "postprocess")


def run_latency(specs: Sequence[ModelSpec], sizes: Sequence[tuple[int, int]], batch_sizes: Sequence[int],
                checkpoint: str | None = None, config: str | None = None, images: Sequence[Path] = (),
                mmseg_baseline: bool = False, min_seconds: float = 1.0, threads: int = 0,
                on_progress: Callable[[str, int], None] | None = None) -> dict:
    entries, e2e = [], []
    torch_module = _torch_module(checkpoint, config) if checkpoint else None
    total = len(specs) + (1 if torch_module is not None else 0)
    for spec in specs:
        segmenter, reason = open_segmenter(spec, threads)
        if segmenter is None:
            entries.append({"model": spec.label, "status": f"skipped: {reason}"})
        else:
            with segmenter:
                info = {"model": spec.label, **segmenter.runner.describe(), "precision": precision_of(segmenter, spec)}
                for size in sizes:
                    for batch in batch_sizes:
                        x = _random_batch(batch, size)
                        stats = summarize(measure(lambda: segmenter.runner.infer(x), min_seconds=min_seconds), batch)
                        entries.append({**info, "status": "ok", "batch": batch, "size": list(size), **stats})
                if images:
                    e2e.append({**info, **_end_to_end(segmenter, images, min_seconds)})
        if on_progress:
            on_progress(spec.label, total)
    if torch_module is not None:
        entries += _torch_compute(torch_module, sizes, batch_sizes, min_seconds)
        if on_progress:
            on_progress("pytorch", total)
    baseline = _mmseg_end_to_end(checkpoint, config, images, min_seconds) if mmseg_baseline and checkpoint and images else None
    if baseline:
        for row in e2e:
            row["speedup_vs_mmseg"] = round(baseline["mean_ms"] / row["mean_ms"], 2)
    return {"machine": describe(), "settings": {"sizes": [list(s) for s in sizes], "batch_sizes": list(batch_sizes),
            "images": [str(p) for p in images], "min_seconds": min_seconds, "threads": threads or "default"},
            "entries": entries, "end_to_end": e2e, "mmseg_baseline": baseline}


def _random_batch(batch: int, size: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, 3, *size)).astype(np.float32)


def _end_to_end(segmenter, images: Sequence[Path], min_seconds: float) -> dict:
    """decode -> preprocess -> infer -> postprocess per image (batch 1), cycling over the image set
    (each image at least once) until `min_seconds`; one warm-up call first."""
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    paths = itertools.cycle(images)

    def one() -> None:
        t0 = time.perf_counter()
        image = read_image(next(paths))
        stages["decode"].append((time.perf_counter() - t0) * 1000)
        pred = segmenter.predict([image.bgr])[0]
        for stage in STAGES[1:]:
            stages[stage].append(pred.timings_ms.get(stage, 0.0))

    one()
    for samples in stages.values():
        samples.clear()  # the warm-up's stages are not measurements
    totals = measure(one, warmup=0, min_runs=len(images), min_seconds=min_seconds)
    return {"status": "ok", "images": len(images), **summarize(totals),
            "stages_ms": {s: round(float(np.mean(v)), 2) for s, v in stages.items()}}


def _torch_module(checkpoint: str, config: str | None):
    from bcdeploy.export.graph import prepare_for_export
    from bcdeploy.train.model import build_segmentor, find_config

    return prepare_for_export(build_segmentor(find_config(checkpoint, config), checkpoint))


def _torch_compute(module, sizes, batch_sizes, min_seconds) -> list[dict]:
    import torch

    rows = []
    for size in sizes:
        for batch in batch_sizes:
            x = torch.from_numpy(_random_batch(batch, size))

            def run():
                with torch.no_grad():
                    module(x)
            stats = summarize(measure(run, min_seconds=min_seconds), batch)
            rows.append({"model": "pytorch (eager)", "backend": "pytorch", "version": torch.__version__,
                         "threads": torch.get_num_threads(), "precision": "fp32", "status": "ok", "batch": batch,
                         "size": list(size), **stats})
    return rows


def _mmseg_end_to_end(checkpoint, config, images, min_seconds) -> dict:
    """MMSeg's `inference_model(model, path)`: its own decode, resize, model, logits upsampling, argmax."""
    import torch
    from mmseg.apis import inference_model

    from bcdeploy.train.model import build_segmentor, find_config

    model = build_segmentor(find_config(checkpoint, config), checkpoint)

    def one(path):
        with torch.no_grad():
            inference_model(model, str(path))
    paths = itertools.cycle(images)
    samples = measure(lambda: one(next(paths)), warmup=1, min_runs=len(images), min_seconds=min_seconds)
    return {"model": "mmseg inference_model (pytorch)", "images": len(images), **summarize(samples)}
