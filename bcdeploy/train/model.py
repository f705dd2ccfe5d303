"""Build an MMSeg segmentor from a config and a checkpoint, safely, for test/predict/export."""

from __future__ import annotations

import logging
from pathlib import Path

from bcdeploy.errors import ConfigError, InputError
from bcdeploy.train.config import load_config, single_device

log = logging.getLogger(__name__)


def find_config(checkpoint: str | Path, config: str | Path | None = None) -> Path:
    """The config beside an MMEngine checkpoint (work_dir layout) when none is given."""
    if config is not None:
        return Path(config)
    ckpt = Path(checkpoint)
    candidates = sorted(p for p in ckpt.parent.glob("*.py") if not p.name.startswith("."))
    if len(candidates) == 1:
        return candidates[0]
    listed = ", ".join(p.name for p in candidates) or "none"
    raise ConfigError(f"{ckpt}: cannot tell which config trained it (configs beside it: {listed}); pass --config")


def build_segmentor(config: str | Path, checkpoint: str | Path | None, device: str = "cpu", trust: bool = False):
    """EncoderDecoder in eval mode with the checkpoint's weights, BN instead of SyncBN.

    Weights are loaded by `checkpoint.load_checkpoint_file` (data only unless trusted) and
    must match the config's architecture exactly; a mismatch is an error, not a warning.
    """
    from bcdeploy.train.checkpoint import load_checkpoint_file

    cfg = load_config(config)
    single_device(cfg)
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    meta: dict = {}
    if checkpoint is not None:
        ckpt = load_checkpoint_file(checkpoint, trust=trust)
        state = ckpt.get("state_dict", ckpt)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # tensor shape mismatches
            first = str(err).strip().splitlines()[-1].strip()[:200]
            raise InputError(f"{checkpoint}: weights do not fit {Path(config).name}: {first}") from None
        if missing or unexpected:
            raise InputError(
                f"{checkpoint}: weights do not fit {Path(config).name}: "
                f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
            )
        meta = ckpt.get("meta", {}) or {}
    model.cfg = cfg
    dataset_meta = meta.get("dataset_meta") or {}
    model.dataset_meta = {
        "classes": tuple(dataset_meta.get("classes") or _classes_from_cfg(cfg)),
        "palette": dataset_meta.get("palette") or _palette_from_cfg(cfg),
    }
    return model.to(device).eval()


def _classes_from_cfg(cfg) -> tuple[str, ...]:
    metainfo = cfg.get("test_dataloader", {}).get("dataset", {}).get("metainfo") or {}
    if metainfo.get("classes"):
        return tuple(metainfo["classes"])
    n = _num_classes(cfg)
    return ("background", "benign", "malignant")[:n] if n <= 3 else tuple(f"class{i}" for i in range(n))


def _palette_from_cfg(cfg) -> list[list[int]]:
    metainfo = cfg.get("test_dataloader", {}).get("dataset", {}).get("metainfo") or {}
    if metainfo.get("palette"):
        return [list(p) for p in metainfo["palette"]]
    base = [[0, 0, 0], [0, 255, 0], [255, 0, 0]]
    n = _num_classes(cfg)
    return base[:n] if n <= 3 else base + [[(37 * i) % 256, (91 * i) % 256, (151 * i) % 256] for i in range(3, n)]



def _num_classes(cfg) -> int:
    """The classes of the head that predicts: the last of a cascade's list of heads (OCRNet, PointRend)."""
    head = cfg.model.decode_head
    return int((head[-1] if isinstance(head, list) else head).num_classes)
