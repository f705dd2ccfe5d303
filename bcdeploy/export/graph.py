"""The exportable graph: a whole-image forward whose height and width really stay dynamic.

Why a wrapper and a module swap instead of `model.forward`:
* mmseg's `Upsample` computes `int(t * scale_factor)` from the input shape; tracing freezes those
  ints, so a 640x640 export fails at 512x768 ("Concat ... 80 and 64"). Interpolating by
  `scale_factor` gives the same result for UNet's exact 2x and keeps the graph dynamic.
* MMSeg's `slide` test mode is a loop over windows; windows belong in the runtime (any backend can
  then use them), so the graph is the whole-image path: backbone -> decode head -> resize to input.
* An in-graph argmax is int64 in ONNX, which TensorRT < 10 truncates and many runtimes mishandle;
  we cast it to uint8 (or int32 beyond 255 classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DynamicUpsample(nn.Module):
    """Drop-in for mmseg.models.utils.Upsample that traces without freezing the output size."""

    def __init__(self, scale_factor: float, mode: str, align_corners: bool | None) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners)


def make_upsampling_dynamic(model: nn.Module) -> int:
    """Replace every size-less mmseg Upsample in `model`; returns how many were replaced."""
    from mmseg.models.utils import Upsample

    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Upsample) and not child.size and child.scale_factor:
                align = child.align_corners if child.mode in ("linear", "bilinear", "bicubic", "trilinear") else None
                setattr(parent, name, DynamicUpsample(child.scale_factor, child.mode, align))
                replaced += 1
    return replaced


class SegmentorForExport(nn.Module):
    """input (N,3,H,W) normalised float -> logits (N,C,H,W) or argmax (N,1,H,W) uint8/int32."""

    def __init__(self, segmentor: nn.Module, argmax: bool = False) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.argmax = argmax
        self.align_corners = bool(getattr(segmentor.decode_head, "align_corners", False))
        self.num_classes = int(segmentor.decode_head.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.segmentor.extract_feat(x)
        logits = self.segmentor.decode_head.forward(feats)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners)
        if not self.argmax:
            return logits
        dtype = torch.uint8 if self.num_classes <= 255 else torch.int32
        return logits.argmax(dim=1, keepdim=True).to(dtype)


def prepare_for_export(segmentor: nn.Module, argmax: bool = False) -> SegmentorForExport:
    segmentor = segmentor.cpu().eval()
    make_upsampling_dynamic(segmentor)
    return SegmentorForExport(segmentor, argmax).eval()
