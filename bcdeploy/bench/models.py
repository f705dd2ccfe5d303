"""Model specs for the benchmarks: `path[#precision]`, e.g. `model.xml#bf16` for OpenVINO BF16.

Opening a model that cannot run here (no TensorRT, no GPU, a missing provider) is not a failure of
the benchmark: it becomes a row with status 'skipped: <reason>'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcdeploy.errors import BcDeployError


@dataclass(frozen=True)
class ModelSpec:
    path: Path
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        opts = dict(self.options)
        suffix = f" ({opts['precision']})" if "precision" in opts else ""
        provider = f" [{opts['provider']}]" if opts.get("provider", "cpu") != "cpu" else ""
        return f"{self.path.name}{suffix}{provider}"


def parse_spec(text: str, provider: str = "cpu") -> ModelSpec:
    path_text, _, precision = text.partition("#")
    path = Path(path_text)
    options: dict[str, Any] = {}
    if path.suffix == ".onnx":
        options["provider"] = provider
    if precision:
        options["precision"] = precision
    return ModelSpec(path, tuple(sorted(options.items())))


def open_segmenter(spec: ModelSpec, threads: int = 0):
    """(Segmenter, None) or (None, reason) when this backend cannot run here."""
    from bcdeploy.runtime.segmenter import Segmenter

    options = dict(spec.options)
    if threads:
        options["threads"] = threads
    try:
        return Segmenter(spec.path, **options), None
    except BcDeployError as err:
        return None, str(err)


def precision_of(segmenter, spec: ModelSpec) -> str:
    return dict(spec.options).get("precision") or segmenter.meta.precision


def file_size_mb(path: Path) -> float:
    size = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        size += path.with_suffix(".bin").stat().st_size
    return round(size / 2**20, 2)
