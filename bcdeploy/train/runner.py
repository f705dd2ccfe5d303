"""`bcdeploy train`: MMEngine's Runner on our configs, on CPU or CUDA."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bcdeploy.train.config import load_config, single_device

log = logging.getLogger(__name__)


def train(
    config: str | Path,
    data_root: str | None = None,
    work_dir: str | None = None,
    max_iters: int | None = None,
    cfg_options: dict[str, Any] | None = None,
    resume: bool = False,
) -> Path:
    """Train; returns the work dir (iter_N.pth, last_checkpoint and the dumped config, as MMEngine writes)."""
    cfg = load_config(config, data_root, cfg_options)
    cfg.work_dir = work_dir or str(Path("work_dirs") / Path(config).stem)
    if max_iters is not None:
        _shorten(cfg, max_iters)
    single_device(cfg)
    cfg.resume = resume
    cfg.launcher = "none"
    from mmengine.runner import Runner

    from bcdeploy.train.checkpoint import mmengine_loads_data_only

    # Resume and `load_from` make MMEngine call torch.load itself: route those through our loader.
    with mmengine_loads_data_only():
        runner = Runner.from_cfg(cfg)
        runner.train()
    return Path(cfg.work_dir)


def _shorten(cfg, max_iters: int) -> None:
    """Run `max_iters` iterations with the same schedule shape (Poly decays to the new end)."""
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = min(cfg.train_cfg.get("val_interval", max_iters), max_iters)
    checkpoint = cfg.default_hooks.checkpoint
    checkpoint.interval = min(checkpoint.get("interval", max_iters), max_iters)
    for scheduler in cfg.param_scheduler:
        if scheduler.get("end", 0) > max_iters:
            scheduler["end"] = max_iters
