# ruff: noqa: I001 - mmseg_compat must be imported before mmseg
"""A class-weighted cross-entropy that works with ignored pixels, registered in MMSeg's MODELS.

MMSeg 1.2.2's CrossEntropyLoss computes its average factor with `class_weight[cls] for cls in label`,
which indexes the weights with the ignore label (255) and crashes as soon as a batch holds an ignored
pixel (bcdeploy prepare writes 255 for ambiguous lesions). torch's own weighted mean over non-ignored
pixels is the intended definition, so we use it directly.
"""

from __future__ import annotations

from bcdeploy.train import mmseg_compat  # noqa: F401 - prepares mmcv.ops before mmseg imports

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from torch import nn  # noqa: E402


@MODELS.register_module(force=True)
class WeightedCrossEntropyLoss(nn.Module):
    """Cross-entropy weighted per class, averaged over the weights of non-ignored pixels."""

    def __init__(self, class_weight: list[float], loss_weight: float = 1.0, loss_name: str = "loss_wce") -> None:
        super().__init__()
        self.register_buffer("class_weight", torch.tensor(class_weight, dtype=torch.float32), persistent=False)
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, cls_score: torch.Tensor, label: torch.Tensor, weight=None, ignore_index: int = 255, **kwargs) -> torch.Tensor:
        return self.loss_weight * F.cross_entropy(cls_score, label, weight=self.class_weight.to(cls_score.dtype),
                                                  ignore_index=ignore_index)

    @property
    def loss_name(self) -> str:
        return self._loss_name
