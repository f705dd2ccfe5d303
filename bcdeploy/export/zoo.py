"""MMSeg's own architectures as test material: each architecture folder of the installed package's configs
(`mmseg/.mim/configs/<arch>/`) made into a 3-class model with random weights, the way a user's training
run would leave it (a config file and an `iter_1.pth` with meta), so `bcdeploy export` meets it exactly as
it meets a user's model.

What is changed in MMSeg's config, and why: the class count (3, as ours); `Pretrained` initialisation
removed (no download here, and random weights are enough to test export and parity); SyncBN made BN (one
device); `test_cfg` whole-image (windows are the runtime's job); the test Resize made small (`test_hw`),
so a CPU exports and checks each architecture in seconds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcdeploy.errors import ConfigError

# architecture folder -> the config chosen for it: the smallest backbone MMSeg ships for the folder
CONFIGS: dict[str, str] = {
    "ann": "ann_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "apcnet": "apcnet_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "bisenetv1": "bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024.py",
    "bisenetv2": "bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py",
    "ccnet": "ccnet_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "cgnet": "cgnet_fcn_4xb8-60k_cityscapes-512x1024.py",
    "danet": "danet_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "ddrnet": "ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py",
    "deeplabv3": "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "deeplabv3plus": "deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py",
    "dmnet": "dmnet_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "dnlnet": "dnl_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "emanet": "emanet_r50-d8_4xb2-80k_cityscapes-512x1024.py",
    "encnet": "encnet_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "erfnet": "erfnet_fcn_4xb4-160k_cityscapes-512x1024.py",
    "fastfcn": "fastfcn_r50-d32_jpu_psp_4xb2-80k_cityscapes-512x1024.py",
    "fastscnn": "fast_scnn_8xb4-160k_cityscapes-512x1024.py",
    "fcn": "fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py",
    "gcnet": "gcnet_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "hrnet": "fcn_hr18s_4xb2-40k_cityscapes-512x1024.py",
    "icnet": "icnet_r18-d8_4xb2-80k_cityscapes-832x832.py",
    "isanet": "isanet_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "mobilenet_v2": "mobilenet-v2-d8_fcn_4xb2-80k_cityscapes-512x1024.py",
    "nonlocal_net": "nonlocal_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "ocrnet": "ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py",
    "pidnet": "pidnet-s_2xb6-120k_1024x1024-cityscapes.py",
    "point_rend": "pointrend_r50_4xb2-80k_cityscapes-512x1024.py",
    "psanet": "psanet_r50-d8_4xb2-40k_cityscapes-512x1024.py",
    "pspnet": "pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py",
    "resnest": "resnest_s101-d8_fcn_4xb2-80k_cityscapes-512x1024.py",
    "segformer": "segformer_mit-b0_8xb2-160k_ade20k-512x512.py",
    "segmenter": "segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py",
    "segnext": "segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py",
    "sem_fpn": "fpn_r50_4xb2-80k_cityscapes-512x1024.py",
    "stdc": "stdc1_4xb12-80k_cityscapes-512x1024.py",
    "unet": "unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py",
    "upernet": "upernet_r18_4xb2-80k_cityscapes-512x1024.py",
}
NUM_CLASSES = 3


@dataclass(frozen=True)
class ZooModel:
    architecture: str
    config: Path  # the modified config, written beside the checkpoint
    checkpoint: Path  # iter_1.pth: random weights, with meta, as MMEngine's runner writes it


def configs_root() -> Path:
    import mmseg

    return Path(mmseg.__file__).parent / ".mim" / "configs"


def architectures() -> list[str]:
    """Every architecture folder of the installed MMSeg's configs (the zoo's rows)."""
    return sorted(p.name for p in configs_root().iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def make_zoo_model(architecture: str, out_dir: Path, *, test_hw: tuple[int, int] = (128, 256), seed: int = 0,
                   overrides: dict[str, Any] | None = None) -> ZooModel:
    """Write `<out_dir>/<architecture>.py` and `<out_dir>/iter_1.pth` (random weights, seeded)."""
    import torch

    from bcdeploy.train.config import load_config
    from bcdeploy.train.model import build_segmentor

    if architecture not in CONFIGS:
        raise ConfigError(f"no zoo config chosen for {architecture!r}; known: {', '.join(sorted(CONFIGS))}")
    source = configs_root() / architecture / CONFIGS[architecture]
    cfg = load_config(source)
    _adapt(cfg, test_hw)
    if overrides:
        cfg.merge_from_dict(overrides)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = out_dir / f"{architecture}.py"
    cfg.dump(str(config))
    torch.manual_seed(seed)
    model = build_segmentor(config, None)
    checkpoint = out_dir / "iter_1.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"iter": 1, "dataset_meta": dict(model.dataset_meta)}},
               checkpoint)
    return ZooModel(architecture, config, checkpoint)


def _adapt(cfg: Any, test_hw: tuple[int, int]) -> None:
    model = cfg.model
    model.pop("pretrained", None)
    _drop_pretrained(model)
    for key in ("decode_head", "auxiliary_head"):
        heads = model.get(key)
        for head in heads if isinstance(heads, list) else [heads] if heads else []:
            head["num_classes"] = NUM_CLASSES
            if head.get("type") in ("Mask2FormerHead", "MaskFormerHead"):
                head.setdefault("loss_cls", {})["class_weight"] = [1.0] * NUM_CLASSES + [0.1]
    model["test_cfg"] = {"mode": "whole"}
    preprocessor = model.get("data_preprocessor") or {}
    preprocessor.pop("size", None)
    preprocessor["test_cfg"] = {"size_divisor": 32}
    h, w = test_hw
    pipeline = copy.deepcopy(cfg.get("test_pipeline") or [])
    for step in pipeline:
        if step.get("type") == "Resize":
            step.update(scale=(w, h), keep_ratio=True)
    cfg.test_pipeline = pipeline
    if cfg.get("test_dataloader"):
        cfg.test_dataloader.dataset.pipeline = pipeline


def _drop_pretrained(node: Any) -> None:
    """Remove `init_cfg=dict(type='Pretrained', ...)` anywhere (nothing is downloaded here)."""
    if isinstance(node, dict):
        init = node.get("init_cfg")
        if isinstance(init, dict) and init.get("type") == "Pretrained":
            node["init_cfg"] = None
        for value in node.values():
            _drop_pretrained(value)
    elif isinstance(node, list):
        for value in node:
            _drop_pretrained(value)
