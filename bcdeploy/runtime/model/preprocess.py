"""MMSeg's test-time preprocessing in numpy, driven by the model sidecar only.

MMSeg: `Resize(scale, keep_ratio=False)` = cv2.resize INTER_LINEAR on the uint8 BGR image
(mmcv.imresize) to exactly `scale`; with `keep_ratio=True` (mmcv.imrescale) to the largest size whose
long edge fits max(scale) and short edge min(scale), each side rounded half up.
Then SegDataPreProcessor: BGR->RGB if `bgr_to_rgb`, `(x - mean) / std` in float32,
and padding (with `pad_val`, after normalisation) only where a size divisor asks for it. Every step
below is that, in the same order and dtype, so the tensors are bit-identical to MMSeg's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bcdeploy.runtime.model.sidecar import ModelMeta


@dataclass(frozen=True)
class PreprocessInfo:
    """What postprocessing needs to undo: original size, size fed to the model, padding."""

    original_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    padded_hw: tuple[int, int]


def normalize(bgr: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """(H,W,3) uint8 BGR -> (3,H,W) float32 in the model's channel order, mean/std applied."""
    img = bgr[..., ::-1] if meta.channel_order == "RGB" else bgr
    mean = np.asarray(meta.mean, np.float32)
    std = np.asarray(meta.std, np.float32)
    out = (img.astype(np.float32) - mean) / std
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def pad_to_divisor(chw: np.ndarray, divisor: int, value: float) -> np.ndarray:
    h, w = chw.shape[1:]
    ph, pw = -h % divisor, -w % divisor
    if not (ph or pw):
        return chw
    return np.pad(chw, ((0, 0), (0, ph), (0, pw)), constant_values=np.float32(value))


def resized_size(original_hw: tuple[int, int], meta: ModelMeta) -> tuple[int, int]:
    """(H, W) MMSeg's test Resize gives an image of `original_hw` (mmcv rescale_size for keep_ratio)."""
    if not meta.keep_ratio:
        return int(meta.input_size[0]), int(meta.input_size[1])
    h, w = original_hw
    factor = min(max(meta.input_size) / max(h, w), min(meta.input_size) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


def resize_for_model(bgr: np.ndarray, meta: ModelMeta, original_hw: tuple[int, int] | None = None) -> np.ndarray:
    """MMSeg's test Resize of an (H,W,3) uint8 BGR image of `original_hw` (default: its own size), a no-op
    for pixels already at that size (resized earlier by this same call: Segmenter.model_view). Pixels of
    any other size are refused: resizing a resized image again would quietly change the tensor."""
    import cv2

    here = (int(bgr.shape[0]), int(bgr.shape[1]))
    original = original_hw or here
    h, w = resized_size(original, meta)
    if (h, w) == here:
        return bgr
    if here != original:
        raise ValueError(f"pixels of {here[1]}x{here[0]} for an image of {original[1]}x{original[0]}: "
                         f"neither its size nor the model's {w}x{h}")
    return cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)


def preprocess(bgr: np.ndarray, meta: ModelMeta, resize: bool = True,
               original_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, PreprocessInfo]:
    """One image -> ((3,H,W) float32 tensor, info). `resize=False` keeps the original size (sliding window).
    `original_hw`: the decoded size where `bgr` was resized for the model already (resize_for_model)."""
    here = (int(bgr.shape[0]), int(bgr.shape[1]))
    original = original_hw or here
    if resize:
        bgr = resize_for_model(bgr, meta, original)
    elif here != original:
        raise ValueError(f"pixels of {here[1]}x{here[0]} for an image of {original[1]}x{original[0]}, "
                         "and this model reads images at their own size")
    resized = (int(bgr.shape[0]), int(bgr.shape[1]))
    chw = pad_to_divisor(normalize(bgr, meta), meta.size_divisor, meta.pad_value)
    return chw, PreprocessInfo(original, resized, (int(chw.shape[1]), int(chw.shape[2])))
