"""Build the runtime's ModelMeta from an MMSeg config: the preprocessing MMSeg applied, as data."""

from __future__ import annotations

from pathlib import Path

from bcdeploy.errors import ConfigError
from bcdeploy.runtime.model.sidecar import ModelMeta
from bcdeploy.versions import package_versions


def resize_from_cfg(cfg) -> tuple[list[int], bool]:
    """([H, W], keep_ratio) of the test pipeline's Resize (MMSeg scales are (W, H)).

    `cfg.test_pipeline` first: it is what `mmseg.apis.inference_model` (the parity reference) runs.
    """
    pipeline = cfg.get("test_pipeline") or cfg.test_dataloader.dataset.pipeline
    for step in pipeline:
        if step.get("type") == "Resize":
            if step.get("scale") is None or step.get("scale_factor") is not None:
                raise ConfigError("the test pipeline's Resize uses scale_factor; bcdeploy's runtime supports "
                                  "Resize(scale=(W, H)) with or without keep_ratio")
            w, h = step["scale"]
            return [int(h), int(w)], bool(step.get("keep_ratio", False))
    raise ConfigError("the test pipeline has no Resize step; cannot tell the model's input size")


# What the runtime pads to when the config asks for no test-time padding: a no-op at the fixed Resize
# sizes MMSeg configs use (all multiples of 16), and what UNet-S5 and most encoders need otherwise.
DEFAULT_SIZE_DIVISOR = 16


def size_divisor_from_cfg(pre) -> int:
    """SegDataPreProcessor pads test inputs only by `test_cfg` (size_divisor; a fixed `size` is refused)."""
    test_cfg = pre.get("test_cfg") or {}
    if test_cfg.get("size") is not None:
        raise ConfigError("data_preprocessor.test_cfg.size (pad every input to one fixed size) is not supported; "
                          "use test_cfg=dict(size_divisor=N)")
    return int(test_cfg.get("size_divisor") or DEFAULT_SIZE_DIVISOR)


def meta_from_segmentor(segmentor, cfg, checkpoint: str | Path | None, checkpoint_sha256: str | None,
                        config_path: str | Path, argmax: bool) -> ModelMeta:
    pre = cfg.model.data_preprocessor
    classes = list(segmentor.dataset_meta["classes"])
    from bcdeploy.export.graph import final_head

    head = final_head(segmentor)
    num_classes = int(head.num_classes)
    if len(classes) != num_classes:
        classes = classes[:num_classes] + [f"class{i}" for i in range(len(classes), num_classes)]
    input_size, keep_ratio = resize_from_cfg(cfg)
    return ModelMeta(
        classes=classes,
        palette=[list(map(int, p)) for p in segmentor.dataset_meta["palette"]][:num_classes],
        mean=[float(v) for v in pre.mean],
        std=[float(v) for v in pre.std],
        input_size=input_size,
        keep_ratio=keep_ratio,
        channel_order="RGB" if pre.get("bgr_to_rgb", False) else "BGR",
        size_divisor=size_divisor_from_cfg(pre),
        pad_value=float(pre.get("pad_val", 0)),
        output_kind="argmax" if argmax else "logits",
        align_corners=bool(getattr(head, "align_corners", False)),
        output_dtype=("uint8" if num_classes <= 255 else "int32") if argmax else "float32",
        versions=package_versions("bcdeploy", "torch", "mmsegmentation", "mmengine", "mmcv-lite", "mmcv", "onnx"),
        source={
            "config": Path(config_path).name,
            "checkpoint": Path(checkpoint).name if checkpoint else None,
            "checkpoint_sha256": checkpoint_sha256,
            "decode_head": type(head).__name__,
            "backbone": type(segmentor.backbone).__name__,
        },
    )


def read_operating_points(metrics_path: str | Path | None) -> dict | None:
    """The CAD operating point a `bcdeploy test --cad-fp-per-image` run measured (its metrics.json), as the
    sidecar holds it ({"cad": {...}}), checked by the sidecar's schema; None without a path."""
    if metrics_path is None:
        return None
    import json

    from pydantic import ValidationError

    from bcdeploy.runtime.model.sidecar_schema import OperatingPointSchema

    try:
        point = (json.loads(Path(metrics_path).read_text()).get("cad") or {}).get("operating_point")
    except (OSError, ValueError, AttributeError) as err:
        raise ConfigError(f"{metrics_path}: not a metrics.json of `bcdeploy test` ({err})") from None
    if point is None:
        raise ConfigError(f"{metrics_path}: no CAD operating point; run `bcdeploy test --cad-fp-per-image N`")
    try:
        return {"cad": {**OperatingPointSchema.model_validate(point).model_dump(), "measured_on": Path(metrics_path).name}}
    except ValidationError as err:
        raise ConfigError(f"{metrics_path}: the CAD operating point is not valid ({err.errors()[0]['msg']})") from None
