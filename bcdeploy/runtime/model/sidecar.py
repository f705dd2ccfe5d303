"""The model sidecar (`*.bcdeploy.json`): everything the runtime needs to pre- and postprocess
exactly as MMSeg did, as plain JSON data (never code, never the MMSeg config).

The same JSON is embedded in the ONNX file's metadata_props under the key `bcdeploy`, so a bare
.onnx still runs and Netron shows it; an engine (.trt) can only rely on its sidecar.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bcdeploy.errors import ConfigError

METADATA_KEY = "bcdeploy"
MAX_SIDECAR_BYTES = 1 << 20  # ours are ~2 KiB  # the ONNX metadata_props key the same JSON is embedded under


@dataclass(frozen=True)
class ModelMeta:
    classes: list[str]
    palette: list[list[int]]
    mean: list[float]
    std: list[float]
    input_size: list[int]  # [H, W] of the test pipeline's Resize scale: the size, or with keep_ratio the bound
    channel_order: str = "RGB"  # what the network expects; images are decoded BGR as MMSeg does
    size_divisor: int = 16
    pad_value: float = 0.0
    input_name: str = "input"
    output_name: str = "output"
    layout: str = "NCHW"
    output_kind: str = "logits"  # logits (N,C,H,W) float | argmax (N,1,H,W) uint8/int32
    output_dtype: str = "float32"
    precision: str = "fp32"
    keep_ratio: bool = False
    align_corners: bool = False  # of the decode head: MMSeg resizes logits with it
    dynamic_profile: dict[str, list[int]] = field(default_factory=dict)  # min/opt/max NCHW
    export: dict[str, Any] = field(default_factory=dict)  # opset, exporter, simplify, parity
    versions: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # config, checkpoint name and sha256
    engine: dict[str, Any] = field(default_factory=dict)  # TensorRT version, GPU, profile
    operating_points: dict[str, Any] = field(default_factory=dict)  # {"cad": {threshold, fp_per_image, images}}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        from bcdeploy.runtime.model.sidecar_schema import FORMAT, SCHEMA_VERSION  # the schema owns its identity

        return {"format": FORMAT, "schema_version": SCHEMA_VERSION, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any, origin: str = "metadata") -> "ModelMeta":
        """Validate `data` (parsed JSON) by the schema, then build the metadata; ConfigError names the field."""
        from bcdeploy.runtime.model.sidecar_schema import validate_sidecar

        return cls(**validate_sidecar(data, origin))

    def validate(self, origin: str) -> None:
        """Check an in-memory description (e.g. before export writes it) by the same schema."""
        from bcdeploy.runtime.model.sidecar_schema import validate_sidecar

        validate_sidecar(self.to_dict(), origin)


def sidecar_candidates(model_path: Path) -> list[Path]:
    """model.onnx -> model.onnx.bcdeploy.json, model.bcdeploy.json; model.fp16.onnx adds model.fp16.*."""
    names = [model_path.name + ".bcdeploy.json"]
    stem = model_path.name
    while "." in stem:
        stem = stem.rsplit(".", 1)[0]
        names.append(stem + ".bcdeploy.json")
    return [model_path.with_name(n) for n in names]


def sidecar_path_for(model_path: str | Path) -> Path:
    """Where export writes the sidecar of `model_path` (model.onnx -> model.bcdeploy.json)."""
    model_path = Path(model_path)
    if model_path.suffix == ".onnx":
        return model_path.with_suffix(".bcdeploy.json")
    return model_path.with_name(model_path.name + ".bcdeploy.json")


def find_sidecar(model_path: str | Path) -> Path | None:
    return next((p for p in sidecar_candidates(Path(model_path)) if p.is_file()), None)


def read_sidecar(path: Path) -> ModelMeta:
    """The sidecar at `path`, read as a file anyone could have written (fileio.read_json: a regular file,
    bounded, any nesting)."""
    from bcdeploy.errors import InputError
    from bcdeploy.fileio import read_json

    try:
        data = read_json(path, max_bytes=MAX_SIDECAR_BYTES)
    except InputError as err:
        raise ConfigError(str(err)) from None
    return ModelMeta.from_dict(data, str(path))


def read_sidecar_of(model_path: str | Path) -> tuple[Path, ModelMeta] | None:
    """The sidecar beside `model_path` and its validated description; None where there is none."""
    path = find_sidecar(model_path)
    return None if path is None else (path, read_sidecar(path))


def load_meta(model_path: str | Path, embedded: str | None = None) -> ModelMeta:
    """The model's description: its sidecar, else the JSON embedded in the model (ONNX); see settle_meta."""
    return settle_meta(model_path, read_sidecar_of(model_path), embedded)


def settle_meta(model_path: str | Path, sidecar: tuple[Path, ModelMeta] | None, embedded: str | None) -> ModelMeta:
    """The model's description from its sidecar (`read_sidecar_of`), else from the JSON embedded in the model.

    Where both exist they must describe the same model: a sidecar left beside another export (another
    checkpoint, other classes or preprocessing) is refused rather than believed. The sidecar is read apart
    so that a caller may read it while the backend loads the model (Segmenter).
    """
    model_path = Path(model_path)
    inner = None
    if embedded:
        origin = f"{model_path} (embedded metadata)"
        try:
            inner = ModelMeta.from_dict(json.loads(embedded), origin)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{origin}: not valid JSON ({err})") from None
    if sidecar is not None:
        path, meta = sidecar
        if inner is not None:
            check_same_model(meta, str(path), inner, f"the metadata embedded in {model_path}")
        return meta
    if inner is not None:
        return inner
    tried = ", ".join(p.name for p in sidecar_candidates(model_path))
    raise ConfigError(f"{model_path}: no model description found (looked for {tried}); "
                      "export the model with `bcdeploy export` or put its sidecar beside it")


# Fields that change the masks a model gives: two descriptions of one model file must agree on them.
MASK_FIELDS = ("classes", "mean", "std", "input_size", "keep_ratio", "channel_order", "size_divisor", "pad_value",
               "layout", "output_kind", "align_corners", "input_name", "output_name",
               "precision")  # precision: the FP16 sidecar copied over the FP32 model's (the report would say fp16)


def check_same_model(first: ModelMeta, first_name: str, second: ModelMeta, second_name: str) -> None:
    """ConfigError naming both values where two descriptions disagree on masks or on the checkpoint."""
    for name in MASK_FIELDS:
        a, b = getattr(first, name), getattr(second, name)
        if a != b:
            raise ConfigError(f"{first_name} says {name} = {a!r} but {second_name} says {b!r}; the sidecar belongs "
                              "to another export: re-export the model, or remove the stale sidecar")
    a, b = first.source.get("checkpoint_sha256"), second.source.get("checkpoint_sha256")
    if a and b and a != b:
        raise ConfigError(f"{first_name} names checkpoint {first.source.get('checkpoint')} (sha256 {a}) but "
                          f"{second_name} names {second.source.get('checkpoint')} (sha256 {b}); the sidecar belongs "
                          "to another export: re-export the model, or remove the stale sidecar")
