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

FORMAT = "bcdeploy-model"
SCHEMA_VERSION = 1
METADATA_KEY = "bcdeploy"


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

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "schema_version": SCHEMA_VERSION, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "metadata") -> "ModelMeta":
        if data.get("format") != FORMAT:
            raise ConfigError(f"{origin}: not a bcdeploy model description (format={data.get('format')!r})")
        if data.get("schema_version", 0) > SCHEMA_VERSION:
            raise ConfigError(f"{origin}: schema version {data['schema_version']} is newer than this bcdeploy "
                              f"understands ({SCHEMA_VERSION}); upgrade bcdeploy")
        known = set(cls.__dataclass_fields__)
        fields = {k: v for k, v in data.items() if k in known}
        try:
            meta = cls(**fields)
        except TypeError as err:
            raise ConfigError(f"{origin}: incomplete model description ({err})") from None
        meta.validate(origin)
        return meta

    def validate(self, origin: str) -> None:
        problems = []
        if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
            problems.append("mean/std must have 3 non-zero values")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            problems.append("input_size must be [H, W]")
        if self.output_kind not in ("logits", "argmax"):
            problems.append(f"output_kind {self.output_kind!r} is not logits or argmax")
        if self.channel_order not in ("RGB", "BGR"):
            problems.append(f"channel_order {self.channel_order!r} is not RGB or BGR")
        if not self.classes:
            problems.append("no classes")
        if problems:
            raise ConfigError(f"{origin}: " + "; ".join(problems))


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


def load_meta(model_path: str | Path, embedded: str | None = None) -> ModelMeta:
    """Read the sidecar beside `model_path`, else the JSON embedded in the model (ONNX)."""
    model_path = Path(model_path)
    for candidate in sidecar_candidates(model_path):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ConfigError(f"{candidate}: not valid JSON ({err})") from None
            return ModelMeta.from_dict(data, str(candidate))
    if embedded:
        try:
            return ModelMeta.from_dict(json.loads(embedded), f"{model_path} (embedded metadata)")
        except json.JSONDecodeError as err:
            raise ConfigError(f"{model_path}: embedded bcdeploy metadata is not valid JSON ({err})") from None
    tried = ", ".join(p.name for p in sidecar_candidates(model_path))
    raise ConfigError(f"{model_path}: no model description found (looked for {tried}); "
                      "export the model with `bcdeploy export` or put its sidecar beside it")
