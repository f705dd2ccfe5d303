"""`bcdeploy bench latency`: model compute and end-to-end latency per backend, precision, batch and
size, with MMSeg's own `inference_model` as the anchor so speed-ups are ratios from the same run.

Every compute row also says how close it runs to the machine's limit: the model's FLOPs (counted on
the ONNX graph) over its median time, beside the FP32 matmul peak measured at startup."""

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
from bcdeploy.runtime.images.imageio import read_image

log = logging.getLogger(__name__)
STAGES = ("decode", "preprocess", "infer", "postprocess")


def run_latency(specs: Sequence[ModelSpec], sizes: Sequence[tuple[int, int]], batch_sizes: Sequence[int], *,
                checkpoint: str | None = None, config: str | None = None, images: Sequence[Path] = (),
                mmseg_baseline: bool = False, min_seconds: float = 1.0, threads: int = 0,
                on_progress: Callable[[str, int], None] | None = None) -> dict:
    entries, e2e = [], []
    machine = describe(peak=True)  # first, before any model loads: the peak wants an idle process
    peak = machine["fp32_matmul"]["peak_gflops"]
    torch_module = _torch_module(checkpoint, config) if checkpoint else None
    total = len(specs) + (1 if torch_module is not None else 0)
    for spec in specs:
        segmenter, reason = open_segmenter(spec)
        if segmenter is None:
            entries.append({"model": spec.label, "status": f"skipped: {reason}"})
        else:
            with segmenter:
                info = {"model": spec.label, **segmenter.runner.describe(), "precision": precision_of(segmenter, spec)}
                entries += _compute_rows(segmenter, spec, info, sizes, batch_sizes, min_seconds, peak)
                if images:
                    e2e.append({**info, **_end_to_end(segmenter, images, min_seconds)})
        if on_progress:
            on_progress(spec.label, total)
    if torch_module is not None:
        flops = {tuple(size): next((e["gflop"] for e in entries if e.get("size") == list(size) and e.get("gflop")), None)
                 for size in sizes}
        entries += [{**row, **achieved(flops[tuple(row["size"])], row["batch"], row["p50_ms"], peak)}
                    for row in _torch_compute(torch_module, sizes, batch_sizes, min_seconds)]
        if on_progress:
            on_progress("pytorch", total)
    baseline = _mmseg_end_to_end(checkpoint, config, images, min_seconds) if mmseg_baseline and checkpoint and images else None
    if baseline:
        for row in e2e:
            row["speedup_vs_mmseg"] = round(baseline["mean_ms"] / row["mean_ms"], 2)
    return {"machine": machine, "settings": {"sizes": [list(s) for s in sizes], "batch_sizes": list(batch_sizes),
            "images": [str(p) for p in images], "min_seconds": min_seconds, "threads": threads or "default"},
            "entries": entries, "end_to_end": e2e, "mmseg_baseline": baseline}


def _compute_rows(segmenter, spec: ModelSpec, info: dict, sizes, batch_sizes, min_seconds: float,
                  peak: float | None) -> list[dict]:
    rows = []
    for size in sizes:
        gflop = model_gflop(spec.path, size)
        for batch in batch_sizes:
            x = _random_batch(batch, size)
            stats = summarize(measure(lambda: segmenter.runner.infer(x), min_seconds=min_seconds), batch)
            rows.append({**info, "status": "ok", "batch": batch, "size": list(size), **stats,
                         **achieved(gflop, batch, stats["p50_ms"], peak)})
    return rows


def model_gflop(path: Path, size: tuple[int, int]) -> float | None:
    """GFLOP of one image at `size`, counted on the FP32 ONNX graph (onnx_info.count_flops).

    A model's FLOPs do not depend on its precision, and the counter reads weights from initializers,
    which an INT8 QDQ graph hides behind DequantizeLinear: so the exported `model.onnx` beside the
    file is counted first, then the file itself. None when neither is an ONNX graph onnx can read.
    """
    candidates = [path.parent / "model.onnx", path] if path.suffix in (".onnx", ".xml") else [path.parent / "model.onnx"]
    for candidate in candidates:
        key = (str(candidate.resolve()), tuple(size))
        if key not in _GFLOP_CACHE and candidate.suffix == ".onnx" and candidate.is_file():
            _GFLOP_CACHE[key] = _count_gflop(candidate, size)
        if _GFLOP_CACHE.get(key):
            return _GFLOP_CACHE[key]
    return None


_GFLOP_CACHE: dict[tuple[str, tuple[int, int]], float | None] = {}


def _count_gflop(path: Path, size: tuple[int, int]) -> float | None:
    try:
        import onnx

        from bcdeploy.inspect.onnx_info import count_flops
    except ImportError:
        return None
    try:
        flops = count_flops(onnx.load(str(path)), size)
    except Exception as err:  # noqa: BLE001 - a graph we cannot count still gets timed
        log.warning("cannot count FLOPs of %s at %s: %s", path, size, err)
        return None
    return round(flops / 1e9, 3) or None


def achieved(gflop: float | None, batch: int, p50_ms: float, peak_gflops: float | None) -> dict:
    """GFLOP per image, GFLOP/s reached at the median and its share of the FP32 matmul peak (INT8
    and BF16 rows can exceed 1.0: the peak is FP32's)."""
    if not gflop or p50_ms <= 0:
        return {"gflop": gflop, "gflops_per_s": None, "of_fp32_peak": None}
    rate = gflop * batch / (p50_ms / 1000.0)
    return {"gflop": gflop, "gflops_per_s": round(rate, 1),
            "of_fp32_peak": round(rate / peak_gflops, 3) if peak_gflops else None}


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
