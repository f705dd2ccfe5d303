"""MMSeg's postprocessing in numpy, shared by every backend.

MMSeg resizes the *logits* bilinearly (with the decode head's `align_corners`) to the original image
size, then takes the argmax. align_corners=False is cv2.resize INTER_LINEAR (same half-pixel centres
as torch); align_corners=True maps corner to corner, which cv2.resize cannot, so it is a separable
two-tap interpolation in numpy (cv2.warpAffine could, but quantises positions to 1/32 pixel).
Doing argmax first and resizing the mask with nearest neighbour (MMDeploy's SDK) moves
lesion boundaries, so that is only the fallback for argmax-only models, documented as such.

Memory: a 4750x6000 image with 3 classes would need 342 MB of float32 logits at full size (and more
for float64 softmax); we resize one class plane at a time and keep a running argmax, so the peak is
two float32 planes plus the mask (~260 MB), whatever the number of classes.
"""

from __future__ import annotations

import numpy as np

from bcdeploy.runtime.preprocess import PreprocessInfo


def crop_padding(chw: np.ndarray, info: PreprocessInfo) -> np.ndarray:
    """Drop the padding the size divisor added (logits of shape (C, padded_h, padded_w))."""
    h, w = info.resized_hw
    return chw[:, :h, :w]


def _taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """align_corners=True source taps along one axis: index pairs and the weight of the second."""
    scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    src = np.arange(size_out, dtype=np.float64) * scale
    lo = np.minimum(np.floor(src).astype(np.intp), size_in - 1)
    hi = np.minimum(lo + 1, size_in - 1)
    return lo, hi, (src - lo).astype(np.float32)


def resize_bilinear(plane: np.ndarray, height: int, width: int, align_corners: bool = False,
                    rows_per_chunk: int = 1024) -> np.ndarray:
    """(h,w) float32 -> (height,width) as torch's bilinear interpolate with `align_corners`."""
    import cv2

    plane = np.ascontiguousarray(plane, np.float32)
    if not align_corners:
        return cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)
    c0, c1, cw = _taps(plane.shape[1], width)
    across = plane[:, c0] * (1 - cw) + plane[:, c1] * cw  # (h, width)
    r0, r1, rw = _taps(plane.shape[0], height)
    out = np.empty((height, width), np.float32)
    for start in range(0, height, rows_per_chunk):  # bounded temporaries on 6000-row mammograms
        rows = slice(start, start + rows_per_chunk)
        weight = rw[rows, None]
        out[rows] = across[r0[rows]] * (1 - weight) + across[r1[rows]] * weight
    return out


def logits_to_mask(logits: np.ndarray, info: PreprocessInfo, align_corners: bool = False) -> np.ndarray:
    """(C,h,w) logits at model resolution -> (H,W) uint8 class mask at the original size."""
    logits = crop_padding(logits, info)
    height, width = info.original_hw
    if logits.shape[1:] == (height, width):
        return logits.argmax(axis=0).astype(np.uint8)
    best = resize_bilinear(logits[0], height, width, align_corners)
    mask = np.zeros((height, width), np.uint8)
    for c in range(1, logits.shape[0]):
        plane = resize_bilinear(logits[c], height, width, align_corners)
        better = plane > best  # strict: ties keep the lower class, as argmax does
        mask[better] = c
        np.maximum(best, plane, out=best)
    return mask


def labels_to_mask(labels: np.ndarray, info: PreprocessInfo) -> np.ndarray:
    """Argmax-only models: (1,h,w) or (h,w) class indices -> original size by nearest neighbour."""
    import cv2

    labels = labels.reshape(-1, *labels.shape[-2:])[:1]
    labels = crop_padding(labels, info)[0].astype(np.uint8)
    height, width = info.original_hw
    if labels.shape == (height, width):
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted, dtype=np.float32)
    return exp / exp.sum(axis=axis, keepdims=True)
