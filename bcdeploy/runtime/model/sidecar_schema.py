"""The schema of a model description (sidecar or embedded JSON), checked before anything trusts it.

A sidecar is a file anyone can edit, copy beside the wrong model or truncate. Every field the runtime
reads is typed and ranged here (pydantic, strict scalars: "123.6" is not a number, true is not 1), so
a bad one is one ConfigError line naming the file, the field and its value, never a traceback or
a wrong mask later. Kept apart from sidecar.py so pydantic loads only when a model is opened.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from bcdeploy.errors import ConfigError

FORMAT = "bcdeploy-model"  # the "format" every description carries
SCHEMA_VERSION = 1  # the newest this runtime reads; a newer one asks for an upgrade

Byte = Annotated[int, Field(strict=True, ge=0, le=255)]
Count = Annotated[int, Field(strict=True, ge=1)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Positive = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
Name = Annotated[str, Field(strict=True, min_length=1)]
Flag = Annotated[bool, Field(strict=True)]
Triple = Annotated[list[Number], Field(min_length=3, max_length=3)]

# Optional fields take ModelMeta's defaults (the dump below leaves out what the file did not set), so
# the defaults live in one place; an explicit null is still a type error.
_UNSET: Any = None


class OperatingPointSchema(BaseModel):
    """An operating point measured by `bcdeploy test --cad-fp-per-image` (eval/froc.py): the lesion score
    threshold for a target rate of false marks per image, and what it rests on."""

    model_config = ConfigDict(extra="allow")
    threshold: Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
    fp_per_image: Annotated[float, Field(strict=True, ge=0.0, allow_inf_nan=False)]
    images: Count


class SidecarSchema(BaseModel):
    model_config = ConfigDict(extra="ignore")

    classes: Annotated[list[Name], Field(min_length=1)]
    palette: list[Annotated[list[Byte], Field(min_length=3, max_length=3)]]
    mean: Triple
    std: Annotated[list[Positive], Field(min_length=3, max_length=3)]
    input_size: Annotated[list[Count], Field(min_length=2, max_length=2)]
    channel_order: Literal["RGB", "BGR"] = _UNSET
    size_divisor: Count = _UNSET
    pad_value: Number = _UNSET
    input_name: Name = _UNSET
    output_name: Name = _UNSET
    layout: Literal["NCHW"] = _UNSET
    output_kind: Literal["logits", "argmax"] = _UNSET
    output_dtype: Literal["float32", "float16", "uint8", "int8", "int32", "int64"] = _UNSET
    precision: Literal["fp32", "fp16", "bf16", "int8"] = _UNSET
    keep_ratio: Flag = _UNSET
    align_corners: Flag = _UNSET
    dynamic_profile: dict[str, Annotated[list[Count], Field(min_length=4, max_length=4)]] = _UNSET
    export: dict[str, Any] = _UNSET
    versions: dict[str, Any] = _UNSET
    source: dict[str, Any] = _UNSET
    engine: dict[str, Any] = _UNSET
    operating_points: dict[str, OperatingPointSchema] = _UNSET

    @field_validator("classes")
    @classmethod
    def _distinct(cls, classes: list[str]) -> list[str]:
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        if repeated:
            raise ValueError(f"class names must be distinct; repeated: {', '.join(repeated)}")
        return classes

    @field_validator("palette")
    @classmethod
    def _one_colour_per_class(cls, palette: list[list[int]], info: ValidationInfo) -> list[list[int]]:
        classes = info.data.get("classes")
        if classes is not None and len(palette) != len(classes):
            raise ValueError(f"{len(palette)} colours for {len(classes)} classes ({', '.join(classes)})")
        return palette

    @field_validator("source")
    @classmethod
    def _checkpoint_hash(cls, source: dict[str, Any]) -> dict[str, Any]:
        digest = source.get("checkpoint_sha256")
        if digest is not None and not (isinstance(digest, str) and len(digest) == 64
                                       and all(c in "0123456789abcdef" for c in digest)):
            raise ValueError(f"checkpoint_sha256 {digest!r} is not a SHA-256 hex digest")
        return source


def validate_sidecar(data: Any, origin: str) -> dict[str, Any]:
    """The fields of a valid description as ModelMeta keyword arguments; ConfigError otherwise."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a model description is a JSON object, this is a JSON {_json_type(data)}")
    if data.get("format") != FORMAT:
        raise ConfigError(f"{origin}: not a bcdeploy model description (format = {data.get('format')!r}, "
                          f"expected {FORMAT!r})")
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{origin}: schema_version = {version!r} is not a positive integer")
    if version > SCHEMA_VERSION:
        raise ConfigError(f"{origin}: schema version {version} is newer than this bcdeploy understands "
                          f"({SCHEMA_VERSION}); upgrade bcdeploy")
    try:
        return SidecarSchema.model_validate(data).model_dump(exclude_unset=True)
    except ValidationError as err:
        raise ConfigError(f"{origin}: " + "; ".join(_describe(e) for e in err.errors()[:3])
                          + (f" (and {err.error_count() - 3} more)" if err.error_count() > 3 else "")) from None


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"{field} is missing (a required field)"
    value = repr(error["input"])
    value = value if len(value) <= 80 else value[:77] + "..."
    return f"{field} = {value}: {error['msg'].removeprefix('Value error, ')}"


def _json_type(data: Any) -> str:
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
    return names.get(type(data), type(data).__name__)
