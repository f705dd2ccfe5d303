"""Make MMSeg 1.2.2 run on mmcv-lite and torch >= 2.6, without touching installed packages.

* mmcv-lite has no compiled ops, but mmseg imports `mmcv.ops` at import time (for `point_sample`
  and `sigmoid_focal_loss`). We give `mmcv.ops` a bare module with the pure-PyTorch `point_sample`;
  any other op raises ImportError on import, so MMEngine's own `try: from mmcv.ops import ...`
  fallbacks behave as on a CPU build. With full mmcv installed we do nothing.
* torch >= 2.6 loads checkpoints with `weights_only=True`. MMEngine Runner checkpoints hold a few
  MMEngine/numpy classes; we allow-list exactly those (`SAFE_GLOBALS`) and refuse anything else
  unless the user trusts the file.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
from pathlib import Path
from typing import Any

from bcdeploy.errors import InputError

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


def install() -> None:
    """Idempotent: prepare mmcv.ops and torch.load for MMSeg. Call before importing mmseg.models."""
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
        import mmcv

        mmcv.ops = ops
        log.debug("mmcv-lite detected: installed the pure-PyTorch mmcv.ops shim")


def safe_globals() -> list:
    """What MMEngine Runner checkpoints pickle besides tensors.

    `builtins.getattr` appears because HistoryBuffer pickles its bound statistics methods as
    `getattr(buffer, 'min')`. Allowing it is safe under torch's weights-only unpickler: REDUCE may
    call only allow-listed callables, so an attribute fetched through getattr can never be called.
    """
    import builtins
    import codecs

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    core = getattr(np, "_core", None) or np.core
    found: list = [HistoryBuffer, np.ndarray, np.dtype, builtins.getattr, codecs.encode,
                   core.multiarray._reconstruct, core.multiarray.scalar]
    found += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool", "uint8")]
    return found


def allow_runner_checkpoints_globally() -> None:
    """For MMEngine's own torch.load calls (`--resume`), which bcdeploy cannot scope."""
    import torch

    torch.serialization.add_safe_globals(safe_globals())


def load_checkpoint_file(path: str | Path, trust: bool = False) -> dict:
    """Load a checkpoint on CPU with weights_only=True (allow-listed classes only) unless trusted."""
    import pickle

    import torch

    install()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(safe_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise InputError(
            f"{path}: refused to load: it needs classes outside the allow-list ({first[:200]}); "
            "if you trust this file, pass --trust-checkpoint"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({str(err).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict):
        raise InputError(f"{path}: checkpoint holds a {type(ckpt).__name__}, expected a dict with 'state_dict'")
    return ckpt
