"""Which model of the same export runs fastest on this CPU: named in `infer`'s `cpu:` line, never switched to.

An export writes variants of one checkpoint side by side (model.onnx, model.int8.onnx, model.xml,
model.int8.xml). Which one is fastest depends on the CPU, its cores and the runtime versions, so it is
measured on the machine (`bcdeploy bench cpu`, runtime/model/speed_record.py) and only a measurement made
here is quoted; without one the line says how to measure. An FP32 OpenVINO IR run at BF16 is a variant
of its own (`model.xml#bf16`): fast with BF16 instructions, emulated and many times slower without. The
user chose a model, and an INT8 variant gives slightly different masks, so bcdeploy only names the faster
one; it never runs another model than the one asked for. A file counts as a variant only if its sidecar names the same
checkpoint SHA-256: a model of another checkpoint beside this one is not "the same model, faster".
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bcdeploy.errors import BcDeployError
from bcdeploy.runtime.model.backends.options import BackendOptions
from bcdeploy.runtime.model.backends.registry import SUFFIXES, backend_for, model_files
from bcdeploy.runtime.model.cpu import cpu_line, read_cpuinfo
from bcdeploy.runtime.model.sidecar import ModelMeta, find_sidecar, read_sidecar
from bcdeploy.runtime.model.speed_record import measured_here

_CPU_BACKENDS = ("onnxruntime", "openvino")
MEANINGFUL = 1.05  # a variant is named as faster only when it measured at least 5 % faster (noise below)


def start_line(model_path: str | Path, meta: ModelMeta, options: BackendOptions, cpuinfo: str | None = None) -> str:
    """The `cpu:` line `infer` prints before its summary: the CPU's facts, then what was MEASURED on this
    machine for this export (bench cpu), or that nothing was and how to measure it; never a guessed ratio."""
    text = read_cpuinfo() if cpuinfo is None else cpuinfo
    line = cpu_line(text)
    model_path = Path(model_path)
    checkpoint = meta.source.get("checkpoint_sha256")
    if not checkpoint or not _on_cpu(options):
        return line
    variants = {name for path, backend, precision in _variants(model_path, checkpoint)
                for name in [path.name, *(_key(path.name, p) for p in other_precisions(backend, precision))]}
    mine_name = variant_name(model_path, options)
    if len(variants) < 2 or mine_name not in variants:
        return line  # nothing beside this model to compare with, or a setting bench cpu does not time
    measured = {name: ms for name, ms in (measured_here(model_path.parent, text) or {}).items() if name in variants}
    if mine_name not in measured:
        return f"{line}; its variants are not measured on this CPU: bcdeploy bench cpu {model_path.parent}"
    mine = measured[mine_name]
    faster = min(((ms, name) for name, ms in measured.items() if ms < mine / MEANINGFUL), default=None)
    if faster is None:
        return f"{line}; measured here: {mine_name} is the fastest of its export ({mine:.0f} ms compute)"
    ms, name = faster
    return (f"{line}; measured here: {name} computes {mine / ms:.2f}x faster than {mine_name} "
            f"({ms:.0f} vs {mine:.0f} ms, bench cpu; its masks differ slightly: check with bench parity)")


def other_precisions(backend: str, precision: str) -> tuple[str, ...]:
    """The precisions other than its own that `bench cpu` times a model file at: an FP32 OpenVINO IR at BF16."""
    return ("bf16",) if backend == "openvino" and precision == "fp32" else ()


def variant_name(model_path: str | Path, options: BackendOptions) -> str:
    """What a measurement of this model with these options is stored under (bench cpu): the file's name,
    with `#bf16` (the benchmarks' spec syntax) where OpenVINO runs it at a precision other than FP32."""
    precision = getattr(options, "precision", "fp32") if options.backend == "openvino" else "fp32"
    return Path(model_path).name if precision == "fp32" else _key(Path(model_path).name, precision)


def _key(file_name: str, precision: str) -> str:
    """A file run at another precision than its own, in the benchmarks' spec syntax (`model.xml#bf16`)."""
    return f"{file_name}#{precision}"


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
