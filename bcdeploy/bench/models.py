"""Model specs for the benchmarks: `path[#precision]`, e.g. `model.xml#bf16` for OpenVINO BF16.

A spec's options are its backend's options object, built and checked by the registry when the
command line is parsed: `model.onnx#bf16` (onnxruntime takes no precision) is refused there with one
line, never run as FP32 under a BF16 label. Options given once for the whole list (`--provider`,
`--threads`) go to every model whose backend takes them; one that no listed model takes is refused.

Opening a model that cannot run here (no TensorRT, no GPU, a missing provider) is not a failure of
the benchmark: it becomes a row with status 'skipped: <reason>'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcdeploy.errors import BcDeployError, ConfigError
from bcdeploy.runtime.model.backends.options import BackendOptions
from bcdeploy.runtime.model.backends.registry import backend_for, backends_taking, model_files


@dataclass(frozen=True)
class ModelSpec:
    path: Path
    options: BackendOptions
    precision: str | None = None  # as asked after '#'; None: the model file's own

    @property
    def label(self) -> str:
        suffix = f" ({self.precision})" if self.precision else ""
        provider = getattr(self.options, "provider", "cpu")
        return f"{self.path.name}{suffix}" + (f" [{provider}]" if provider != "cpu" else "")


def parse_spec(text: str, spell: Callable[[str], str] = str, **shared: Any) -> ModelSpec:
    """`path[#precision]` with the `shared` options its backend takes (None: not given)."""
    path_text, _, precision = text.partition("#")
    path = Path(path_text)
    backend = backend_for(path)
    values = {k: v for k, v in shared.items() if k in backend.option_names()}
    values["precision"] = precision or None
    return ModelSpec(path, backend.make_options(path, values, spell), precision or None)


def parse_specs(texts: Sequence[str], spell: Callable[[str], str] = str, **shared: Any) -> list[ModelSpec]:
    """Specs for every model; an option given for the list that none of them takes is a ConfigError."""
    specs = [parse_spec(text, spell, **shared) for text in texts]
    for name, value in shared.items():
        if value is not None and not any(name in backend_for(s.path).option_names() for s in specs):
            listed = ", ".join(f"{s.path.name}: {backend_for(s.path).name}" for s in specs)
            raise ConfigError(f"{spell(name)} applies to none of the models ({listed}); "
                              f"it is an option of {', '.join(backends_taking(name))}")
    return specs


def open_segmenter(spec: ModelSpec):
    """(Segmenter, None) or (None, reason) when this backend cannot run here (not installed, no GPU,
    no such file). A model whose description does not fit it (ConfigError) is an error, not a skip.
    Every backend option (threads too) travels in the spec (parse_spec)."""
    from bcdeploy.runtime.model.segmenter import Segmenter

    try:
        return Segmenter(spec.path, options=spec.options), None
    except ConfigError:
        raise
    except BcDeployError as err:
        return None, str(err)


def precision_of(segmenter, spec: ModelSpec) -> str:
    return spec.precision or segmenter.meta.precision


def file_size_mb(path: Path) -> float:
    size = sum(p.stat().st_size for p in model_files(path) if p.is_file())
    return round(size / 2**20, 2)
