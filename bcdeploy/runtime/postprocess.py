"""MMSeg's postprocessing in numpy, shared by every backend.

MMSeg resizes the *logits* bilinearly (align_corners=False) to the original image size, then takes
the argmax. Doing argmax first and resizing the mask with nearest neighbour (MMDeploy's SDK) moves
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


def logits_to_mask(logits: np.ndarray, info: PreprocessInfo) -> np.ndarray:
    """(C,h,w) logits at model resolution -> (H,W) uint8 class mask at the original size."""
    import cv2

    logits = crop_padding(logits, info)
    height, width = info.original_hw
    if logits.shape[1:] == (height, width):
        return logits.argmax(axis=0).astype(np.uint8)
    best = cv2.resize(np.ascontiguousarray(logits[0], np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    mask = np.zeros((height, width), np.uint8)
    for c in range(1, logits.shape[0]):
        plane = cv2.resize(np.ascontiguousarray(logits[c], np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
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
