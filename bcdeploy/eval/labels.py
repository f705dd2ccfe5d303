"""Reading a ground-truth (or predicted) label PNG: one policy for every consumer.

`bcdeploy test`, `confusion-matrix` and `bench parity` compare masks against label maps; each used
to read them with its own rule for a file that would not decode (two raised, one silently dropped
the image from the metrics, which then described fewer images than the user asked about). The policy
here: a label file that exists but cannot be read as a single-channel class map is an error naming
the file. Whether a label must exist at all is the caller's business (parity works without labels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bcdeploy.errors import InputError


def read_label_png(path: str | Path) -> np.ndarray:
    """The class-index map in `path` (2-D, as written); InputError naming the file if it is missing,
    undecodable or not single-channel."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: label file not found")
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise InputError(f"{path}: cannot read this label PNG (empty, truncated or not an image)")
    if label.ndim != 2:
        raise InputError(f"{path}: a label must be a single-channel class map, this image has "
                         f"{label.shape[2]} channels")
    return label
