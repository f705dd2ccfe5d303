"""Sliding-window inference over an image larger than the model's input, for any predictor.

After MONAI's `sliding_window_inference` (monai/inferers/utils.py): windows on a regular grid whose
last window is flush with the border, batched, each window's logits weighted by a Gaussian
(importance highest at the window centre, where the receptive field is complete) or a constant, then
divided by the summed weights. The predictor is any callable (N,C,h,w) -> (N,K,h,w), which makes it
testable with predictors of known output.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Predictor = Callable[[np.ndarray], np.ndarray]


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start offsets along one axis: step window*(1-overlap), the last window ends at `length`."""
    if length <= window:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    starts = list(range(0, length - window, step))
    starts.append(length - window)
    return sorted(set(starts))


def importance_map(window: tuple[int, int], mode: str, sigma_scale: float = 0.125) -> np.ndarray:
    if mode == "constant":
        return np.ones(window, np.float32)
    if mode != "gaussian":
        raise ValueError(f"blend mode must be 'gaussian' or 'constant', not {mode!r}")
    axes = []
    for size in window:
        centre = (size - 1) / 2.0
        sigma = max(size * sigma_scale, 1e-3)
        axes.append(np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2))
    weights = np.outer(axes[0], axes[1]).astype(np.float32)
    weights /= weights.max()
    # MONAI clamps to a small positive minimum so border pixels covered by one window still count.
    return np.maximum(weights, np.float32(1e-3))


def sliding_window_inference(
    image: np.ndarray,
    window: tuple[int, int],
    predictor: Predictor,
    overlap: float = 0.25,
    mode: str = "gaussian",
    batch_size: int = 4,
    pad_value: float = 0.0,
) -> np.ndarray:
    """image (1,C,H,W) -> (1,K,H,W) blended predictor output. Images smaller than a window are padded."""
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"expected one (1,C,H,W) image, got {image.shape}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    _, _, height, width = image.shape
    wh, ww = window
    ph, pw = max(0, wh - height), max(0, ww - width)
    if ph or pw:
        image = np.pad(image, ((0, 0), (0, 0), (0, ph), (0, pw)), constant_values=np.float32(pad_value))
    full_h, full_w = image.shape[2:]
    corners = [(y, x) for y in window_starts(full_h, wh, overlap) for x in window_starts(full_w, ww, overlap)]
    weights = importance_map(window, mode)
    total = None
    norm = np.zeros((full_h, full_w), np.float32)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i:i + batch_size]
        tiles = np.concatenate([image[:, :, y:y + wh, x:x + ww] for y, x in chunk], axis=0)
        out = np.asarray(predictor(tiles), np.float32)
        if total is None:
            total = np.zeros((1, out.shape[1], full_h, full_w), np.float32)
        for tile_out, (y, x) in zip(out, chunk):
            total[0, :, y:y + wh, x:x + ww] += tile_out * weights
            norm[y:y + wh, x:x + ww] += weights
    total /= norm
    return total[:, :, :height, :width]
