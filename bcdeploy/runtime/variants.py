"""Which model of the same export runs fastest on this CPU: named in `infer`'s `cpu:` line, never switched to.

An export writes variants of one checkpoint side by side (model.onnx, model.int8.onnx, model.xml,
model.int8.xml). Which one is fastest depends on the CPU (runtime/cpu.py), and a user who runs
model.onnx on a VNNI CPU leaves a 3-4x speed-up unused without knowing. The user chose a model, and
an INT8 variant gives slightly different masks, so bcdeploy only names the faster one; it never runs
another model than the one asked for. A file counts as a variant only if its sidecar names the same
checkpoint SHA-256: a model of another checkpoint beside this one is not "the same model, faster".
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from bcdeploy.errors import BcDeployError
from bcdeploy.runtime.backends.options import BackendOptions
from bcdeploy.runtime.backends.registry import SUFFIXES, backend_for, model_files
from bcdeploy.runtime.cpu import CpuAdvice, advise, cpu_flags, cpu_line, read_cpuinfo
from bcdeploy.runtime.metadata import ModelMeta, find_sidecar, read_sidecar

_CPU_BACKENDS = ("onnxruntime", "openvino")


@dataclass(frozen=True)
class Variant:
    path: Path
    precision: str | None  # OpenVINO precision hint to run it with ("bf16"); None: the file's own
    reason: str  # the CPU feature that makes it fast ("VNNI", "AVX-512 BF16")

    def label(self) -> str:
        return self.path.name + (f" --precision {self.precision}" if self.precision else "")


def speed_rank(backend: str, precision: str, hint: str | None, advice: CpuAdvice) -> int | None:
    """Lower runs faster on this CPU (measured: OpenVINO INT8 < onnxruntime INT8 < OpenVINO BF16 <
    FP32); None where there is nothing to gain (FP32 is at the sgemm peak on either backend)."""
    if precision == "int8" and advice.int8:
        return 0 if backend == "openvino" else 1
    if precision == "fp32" and backend == "openvino" and hint == "bf16" and advice.bf16:
        return 2
    return None


def faster_variant(model_path: Path, meta: ModelMeta, options: BackendOptions, advice: CpuAdvice) -> Variant | None:
    """The fastest variant of `model_path`'s export on this CPU when it beats the model as it runs now
    (`options`: its backend options); None when the model runs elsewhere than the CPU or nothing beats it."""
    checkpoint = meta.source.get("checkpoint_sha256")
    if not checkpoint or not _on_cpu(options):
        return None
    current = speed_rank(options.backend, meta.precision, getattr(options, "precision", None), advice)
    best: tuple[int, Variant] | None = None
    for path, backend, precision in _variants(model_path, checkpoint):
        # An FP32 IR is the BF16 variant (OpenVINO runs it with --precision bf16), this model's own included.
        hint = "bf16" if backend == "openvino" and precision == "fp32" else None
        rank = speed_rank(backend, precision, hint, advice)
        if rank is None or (current is not None and rank >= current) or (best and rank >= best[0]):
            continue
        reason = advice.bf16 if hint else advice.int8
        best = (rank, Variant(path, hint, reason or ""))
    return best[1] if best else None


def start_line(model_path: str | Path, meta: ModelMeta, options: BackendOptions, cpuinfo: str | None = None) -> str:
    """The CPU line `infer` prints before its summary, with a hint naming a faster variant of the same export."""
    text = read_cpuinfo() if cpuinfo is None else cpuinfo
    line = cpu_line(text)
    variant = faster_variant(Path(model_path), meta, options, advise(cpu_flags(text)))
    if variant is None:
        return line
    if variant.path == Path(model_path):
        return f"{line}; hint: --precision {variant.precision} runs this model faster on this CPU ({variant.reason})"
    return f"{line}; hint: {variant.label()} beside this model is the fastest variant on this CPU ({variant.reason})"


def _on_cpu(options: BackendOptions) -> bool:
    if options.backend == "onnxruntime":
        return getattr(options, "provider", None) == "cpu"
    return options.backend == "openvino" and str(getattr(options, "device", "")).startswith("CPU")


def _variants(model_path: Path, checkpoint: str):
    """(path, backend, precision) of the CPU models beside `model_path` (itself included) whose sidecar
    names `checkpoint`; unreadable or foreign sidecars are skipped (this is advice, not a check)."""
    has_openvino = importlib.util.find_spec("openvino") is not None
    try:
        paths = sorted(p for p in model_path.parent.iterdir() if p.suffix.lower() in SUFFIXES)
    except OSError:
        return
    for path in paths:
        try:
            backend = backend_for(path).name
            if backend not in _CPU_BACKENDS or (backend == "openvino" and not has_openvino):
                continue
            sidecar = find_sidecar(path)
            if sidecar is None or not all(p.is_file() for p in model_files(path)):
                continue
            meta = read_sidecar(sidecar)
        except (BcDeployError, OSError):
            continue
        if meta.source.get("checkpoint_sha256") == checkpoint:
            yield path, backend, meta.precision
