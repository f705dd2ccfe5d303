"""Make MMSeg 1.2.2 run on mmcv-lite and torch >= 2.6, without touching installed packages.

* mmcv-lite has no compiled ops, but mmseg imports `mmcv.ops` at import time (for `point_sample`
  and `sigmoid_focal_loss`). We give `mmcv.ops` a bare module with the pure-PyTorch `point_sample`;
  any other op raises ImportError on import, so MMEngine's own `try: from mmcv.ops import ...`
  fallbacks behave as on a CPU build. The ops mmcv writes in plain PyTorch (CrissCrossAttention) are
  loaded from their files. With full mmcv installed we do nothing.

Checkpoints are loaded by bcdeploy.train.checkpoint (weights-only, data-only stand-ins).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_INSTALLED = False


def _mmcv_has_ops() -> bool:
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except (ImportError, ValueError):
        return False


def _point_sample(input, points, align_corners=False, **kwargs):  # noqa: A002 - mmcv's signature
    """mmcv.ops.point_sample in pure PyTorch (points in [0, 1], shape (N, P, 2) or (N, H, W, 2))."""
    import torch.nn.functional as F

    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


def _unavailable(name: str):
    def op(*_args, **_kwargs):
        raise NotImplementedError(f"mmcv.ops.{name} needs full mmcv with compiled ops (mmcv-lite is installed)")
    return op


class _OpsModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        # ModuleNotFoundError: mmseg guards these imports with `except ModuleNotFoundError`.
        raise ModuleNotFoundError(f"mmcv.ops.{name} is not available with mmcv-lite (no compiled ops)")


# mmcv.ops modules written in plain PyTorch (no `_ext` kernel), shipped in mmcv-lite's wheel but unreachable
# through `mmcv.ops` (its __init__ loads the compiled extension): module file -> the class mmseg imports.
# CrissCrossAttention (CCNet) computes with einsum and softmax; it exports to ONNX like any other layer.
_PURE_PYTORCH_OPS = {"cc_attention": "CrissCrossAttention"}


def _load_pure_op(module_name: str, attribute: str) -> Any:
    """Load mmcv/ops/<module_name>.py by its file, without running mmcv/ops/__init__.py."""
    import mmcv

    path = Path(mmcv.__file__).parent / "ops" / f"{module_name}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"mmcv.ops.{module_name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return getattr(module, attribute, None)


def install() -> None:
    """Idempotent: prepare mmcv.ops for MMSeg. Call before importing mmseg.models."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    if "mmcv.ops" not in sys.modules and not _mmcv_has_ops():
        ops = _OpsModule("mmcv.ops")
        ops.__file__ = __file__
        ops.__path__ = []  # a package, so `mmcv.ops.xyz` submodule imports fail cleanly
        ops.point_sample = _point_sample
        ops.sigmoid_focal_loss = _unavailable("sigmoid_focal_loss")
        sys.modules["mmcv.ops"] = ops
        for name, attribute in _PURE_PYTORCH_OPS.items():
            found = _load_pure_op(name, attribute)
            if found is not None:
                setattr(ops, attribute, found)
        import mmcv

        mmcv.ops = ops
        log.debug("mmcv-lite detected: installed the pure-PyTorch mmcv.ops shim")
