"""The exportable graph: a whole-image forward whose height and width really stay dynamic.

Why a wrapper and a module swap instead of `model.forward`:
* what MMSeg code does that the tracer cannot keep dynamic (mmseg's `Upsample` freezing
  `int(t * scale_factor)`, adaptive pooling to a fixed grid, ...) is rewritten exactly: export/rewrites.py.
* MMSeg's `slide` test mode is a loop over windows; windows belong in the runtime (any backend can
  then use them), so the graph is the whole-image path: backbone -> decode head -> resize to input.
* An in-graph argmax is int64 in ONNX, which TensorRT < 10 truncates and many runtimes mishandle;
  we cast it to uint8 (or int32 beyond 255 classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def final_head(segmentor: nn.Module) -> nn.Module:
    """The head whose output is the logits: the last of a cascade (OCRNet, PointRend), else the one head."""
    head = segmentor.decode_head
    return head[-1] if isinstance(head, nn.ModuleList) else head


def decode(head: nn.Module, feats: object) -> torch.Tensor:
    """The decode heads' test-time forward, as MMSeg's `predict` runs it: a cascade feeds each head the
    previous one's output (CascadeEncoderDecoder); a head that returns several maps in its forward
    (DANet: PAM+CAM, PAM, CAM) predicts with the first."""
    if isinstance(head, nn.ModuleList):
        out = head[0].forward(feats)
        for stage in head[1:]:
            out = stage.forward(feats, out)
    else:
        out = head.forward(feats)
    return out[0] if isinstance(out, tuple | list) else out


class SegmentorForExport(nn.Module):
    """input (N,3,H,W) normalised float -> logits (N,C,H,W) or argmax (N,1,H,W) uint8/int32."""

    def __init__(self, segmentor: nn.Module, argmax: bool = False) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.argmax = argmax
        self.align_corners = bool(getattr(final_head(segmentor), "align_corners", False))
        self.num_classes = int(final_head(segmentor).num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.segmentor.extract_feat(x)
        logits = decode(self.segmentor.decode_head, feats)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners)
        if not self.argmax:
            return logits
        dtype = torch.uint8 if self.num_classes <= 255 else torch.int32
        return logits.argmax(dim=1, keepdim=True).to(dtype)


def prepare_for_export(segmentor: nn.Module, argmax: bool = False) -> SegmentorForExport:
    from bcdeploy.export.rewrites import swap_modules

    segmentor = segmentor.cpu().eval()
    swap_modules(segmentor)
    return SegmentorForExport(segmentor, argmax).eval()
