"""Write masks and pictures atomically (encode in memory, then one rename)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bcdeploy.errors import InputError
from bcdeploy.fileio import write_bytes


def encode(array: np.ndarray, suffix: str, quality: int = 90) -> bytes:
    import cv2

    # PNG level 1: a full-size DMID mask (28 MP) takes ~1 s at level 3 and is barely larger at 1
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(suffix, array, params)
    if not ok:
        raise InputError(f"cannot encode a {array.shape} {array.dtype} array as {suffix}")
    return buf.tobytes()


def write_png(path: str | Path, array: np.ndarray) -> None:
    write_bytes(path, encode(array, ".png"))


def write_jpeg(path: str | Path, array: np.ndarray, quality: int = 90) -> None:
    write_bytes(path, encode(array, ".jpg", quality))
