"""Pixel intensities to the model's 8 bits: one rule for every reader.

Both the raster reader (16-bit TIFF/PNG, imageio.py) and the DICOM reader (after its modality and VOI
LUTs, dicom.py) end in the same linear map onto 0..255. It lives here, below both, so neither reader
imports the other for it.
"""

from __future__ import annotations

import numpy as np


def effective_bit_depth(max_value: int) -> int:
    """Smallest of 8/10/12/14/16 bits that can hold `max_value`."""
    for bits in (8, 10, 12, 14, 16):
        if max_value < (1 << bits):
            return bits
    return 16


def scale_to_uint8(arr: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly onto 0..255 with rounding, clipping outside values."""
    span = max(high - low, 1e-6)
    out = (arr.astype(np.float32) - np.float32(low)) * np.float32(255.0 / span)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
