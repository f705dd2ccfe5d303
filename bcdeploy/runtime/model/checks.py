"""Check a model description against the model's own inputs and outputs, before any image is read.

A sidecar that lists 2 classes for a 3-channel model would silently drop every pixel of the third
class (malignant lesions); one that claims argmax output on a logits model turns logits into invented
class indices. The runner knows what the model really takes and gives (`input_specs`/`output_specs`),
so any disagreement is one ConfigError naming both values. Dynamic dimensions (None) cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bcdeploy.errors import ConfigError
from bcdeploy.runtime.model.backends.base import TensorSpec
from bcdeploy.runtime.model.sidecar import ModelMeta, find_sidecar


def describe_source(model_path: str | Path) -> str:
    """What the description of `model_path` was read from, for messages."""
    sidecar = find_sidecar(model_path)
    return str(sidecar) if sidecar else f"the metadata embedded in {model_path}"


def check_model_io(meta: ModelMeta, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                   model_path: str | Path, source: str | None = None) -> None:
    """Raise ConfigError where `meta` (read from `source`) disagrees with the model's I/O."""
    said = source or describe_source(model_path)
    where = f"{model_path}"
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConfigError(f"{where}: bcdeploy runs models with one input and one output; this one has inputs "
                          f"[{', '.join(map(str, inputs))}] and outputs [{', '.join(map(str, outputs))}]")
    _check_input(meta, inputs[0], where, said)
    _check_output(meta, outputs[0], where, said)


def _mismatch(where: str, said: str, what: str, claimed: object, spec: TensorSpec, actual: object) -> ConfigError:
    return ConfigError(f"{where}: {said} says {what} {claimed} but the model's {spec} has {actual}; "
                       "the description belongs to another model: re-export it or fix the sidecar")


def _check_name(where: str, said: str, kind: str, claimed: str, spec: TensorSpec) -> None:
    if spec.name is not None and spec.name != claimed:
        raise _mismatch(where, said, f"{kind}_name", repr(claimed), spec, f"name {spec.name!r}")


def _check_input(meta: ModelMeta, spec: TensorSpec, where: str, said: str) -> None:
    _check_name(where, said, "input", meta.input_name, spec)
    if spec.dtype != "float32":
        raise ConfigError(f"{where}: the model's input {spec} is not float32; bcdeploy feeds normalised float32 "
                          "images (export keeps float32 inputs, FP16 included)")
    if len(spec.shape) != 4:
        raise _mismatch(where, said, "layout", meta.layout, spec, f"{len(spec.shape)} dimensions")
    if spec.shape[1] not in (None, 3):
        raise ConfigError(f"{where}: the model's input {spec} has {spec.shape[1]} channels; bcdeploy feeds "
                          "3-channel (N,3,H,W) images")


def _check_output(meta: ModelMeta, spec: TensorSpec, where: str, said: str) -> None:
    _check_name(where, said, "output", meta.output_name, spec)
    channels = spec.shape[1] if len(spec.shape) == 4 else None
    if meta.output_kind == "logits":
        if not spec.dtype.startswith(("float", "bfloat")):
            raise _mismatch(where, said, "output_kind", "'logits'", spec, f"{spec.dtype} values (class indices?)")
        if len(spec.shape) != 4:
            raise _mismatch(where, said, "output_kind", "'logits' (N,C,H,W)", spec, f"{len(spec.shape)} dimensions")
        if channels is not None and channels != meta.num_classes:
            raise _mismatch(where, said, f"{meta.num_classes} classes", f"({', '.join(meta.classes)})", spec,
                            f"{channels} output channels")
        return
    if not spec.dtype.startswith(("int", "uint")):
        raise _mismatch(where, said, "output_kind", "'argmax'", spec, f"{spec.dtype} values (logits?)")
    if len(spec.shape) not in (3, 4) or (len(spec.shape) == 4 and channels not in (None, 1)):
        raise _mismatch(where, said, "output_kind", "'argmax' (one class index per pixel)", spec,
                        f"{channels} channels" if channels else f"{len(spec.shape)} dimensions")
