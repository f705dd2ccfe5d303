"""Build the runtime's ModelMeta from an MMSeg config: the preprocessing MMSeg applied, as data."""

from __future__ import annotations

from importlib import metadata as importlib_metadata
from pathlib import Path

from bcdeploy.errors import ConfigError
from bcdeploy.runtime.metadata import ModelMeta


def resize_scale_from_cfg(cfg) -> list[int]:
    """[H, W] of the test pipeline's Resize (MMSeg scales are (W, H)); keep_ratio must be False."""
    pipeline = cfg.test_dataloader.dataset.pipeline
    for step in pipeline:
        if step.get("type") == "Resize":
            if step.get("keep_ratio", False):
                raise ConfigError("the test pipeline's Resize keeps the aspect ratio; bcdeploy's runtime "
                                  "supports MMSeg's fixed-size Resize (keep_ratio=False) only")
            w, h = step["scale"]
            return [int(h), int(w)]
    raise ConfigError("the test pipeline has no Resize step; cannot tell the model's input size")


def versions(*packages: str) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def meta_from_segmentor(segmentor, cfg, checkpoint: str | Path | None, checkpoint_sha256: str | None,
                        config_path: str | Path, argmax: bool) -> ModelMeta:
    pre = cfg.model.data_preprocessor
    classes = list(segmentor.dataset_meta["classes"])
    num_classes = int(segmentor.decode_head.num_classes)
    if len(classes) != num_classes:
        classes = classes[:num_classes] + [f"class{i}" for i in range(len(classes), num_classes)]
    return ModelMeta(
        classes=classes,
        palette=[list(map(int, p)) for p in segmentor.dataset_meta["palette"]][:num_classes],
        mean=[float(v) for v in pre.mean],
        std=[float(v) for v in pre.std],
        input_size=resize_scale_from_cfg(cfg),
        channel_order="RGB" if pre.get("bgr_to_rgb", False) else "BGR",
        size_divisor=16,
        pad_value=float(pre.get("pad_val", 0)),
        output_kind="argmax" if argmax else "logits",
        align_corners=bool(getattr(segmentor.decode_head, "align_corners", False)),
        output_dtype=("uint8" if num_classes <= 255 else "int32") if argmax else "float32",
        versions=versions("bcdeploy", "torch", "mmsegmentation", "mmengine", "mmcv-lite", "mmcv", "onnx"),
        source={
            "config": Path(config_path).name,
            "checkpoint": Path(checkpoint).name if checkpoint else None,
            "checkpoint_sha256": checkpoint_sha256,
            "decode_head": type(segmentor.decode_head).__name__,
            "backbone": type(segmentor.backbone).__name__,
        },
    )
